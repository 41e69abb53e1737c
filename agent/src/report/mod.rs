//! The enterprise self-check report: events in, one self-contained HTML file out.
//!
//! [`ReportSink`] sits behind the writer thread like any other sink. It folds every event into a
//! [`ReportData`] of bounded size — per verdict, per scenario and Beijing day, per hour of the
//! day, a bounded top-N of recipients, and per alert kind a bounded set of recipients, services,
//! masked evidence and a few examples — and never keeps individual flows. At `finish()` it renders
//! the HTML ([`render`]) and writes it next to the target path, then renames it into place.
//!
//! Strings that came from traffic are scrubbed of anything that looks like a raw personal
//! identifier (resident ID, mobile, card number) when they enter the aggregate, so the report
//! cannot leak one even if an upstream component forgot to mask it; they are HTML-escaped when
//! rendered.
//!
//! Flows with the verdict `excluded` (infrastructure traffic named by an `[[exclude]]` entry)
//! are counted per entry apart from the exports and never become findings. Every sentence is
//! rendered in the report's language from the data and the alerts' fields (an alert's English
//! `summary` is only the English report's tooltip); every cut table or list says how much of it
//! is shown.
//!
//! Use: `crossline-agent analyze --config agent.toml --report report.html [--lang zh|en] PCAP...`
//! (Chinese by default). The file has no script and no external asset: inline CSS, three inline
//! SVG charts (export bytes over time stacked by verdict, top recipients, a day × hour heat map
//! of exports not covered by a filing), and prints on A4. `scripts/screenshot-report.sh` renders
//! it with headless Chromium.
//!
//! Layout: `mod.rs` (aggregation, the sink), [`i18n`] (every label, both languages), `charts`
//! (SVG), `html` (the page). The labelled data set the report tests use is test support, in the
//! `crossline-testgen` crate (`report_sample`).

mod charts;
mod html;
pub mod i18n;
mod text;

pub use html::{fmt_int, render};
pub use i18n::Lang;
pub use text::{esc, fmt_bytes};

use crossline_config::event::{
    AlertKind, Direction, Event, EventType, Severity, Stats, VerdictStatus,
};
use crossline_config::time::{self, Date};
use crossline_config::Registry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Recipients kept for the top-N chart after pruning (up to twice as many between prunes).
pub const RECIPIENT_CAPACITY: usize = 512;
/// Distinct recipients, services, evidence strings kept per finding kind.
pub const FINDING_VALUES: usize = 24;
/// Examples kept per finding kind (the ones with the most bytes).
pub const FINDING_EXAMPLES: usize = 5;
/// (enterprise, scenario) buckets kept; later unknown ones fold into one "other" bucket.
pub const SCENARIO_CAPACITY: usize = 2048;
/// Beijing days kept per scenario and in the heat map.
pub const DAY_CAPACITY: usize = 400;
/// Bins of the time series at most (the bin width grows to keep under this).
pub const SERIES_BINS: usize = 96;
/// Distinct not-filed recipients counted exactly (then "at least").
pub const UNFILED_RECIPIENT_CAPACITY: usize = 10_000;
/// Long flows with running (active-timeout) records tracked to avoid double counting.
pub const RUNNING_CAPACITY: usize = 1_000_000;
/// Longest string kept from traffic (SNI, host names, summaries), in bytes.
pub const MAX_TEXT: usize = 200;

/// `[[exclude]]` entry names tracked separately.
pub const EXCLUDE_CAPACITY: usize = 64;

/// Number of verdict slots (every `VerdictStatus`).
pub const VERDICTS: usize = 9;

/// Errors of the report sink.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The HTML file could not be written.
    #[error("cannot write report {path}: {source}")]
    Write {
        /// The report file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

impl From<ReportError> for std::io::Error {
    fn from(e: ReportError) -> Self {
        std::io::Error::other(e.to_string())
    }
}

/// Time series of export bytes per verdict in bins of growing width (Beijing-aligned).
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Index into [`SERIES_WIDTHS`].
    width_index: usize,
    bins: BTreeMap<i64, [u64; VERDICTS]>,
}

/// Bin widths in seconds; each is a multiple of the one before, so bins merge exactly.
pub const SERIES_WIDTHS: [i64; 17] = [
    1,
    2,
    10,
    30,
    60,
    300,
    600,
    1800,
    3600,
    10_800,
    21_600,
    43_200,
    86_400,
    604_800,
    2_419_200,
    29_030_400,
    290_304_000,
];

impl Series {
    /// Bin width in seconds.
    pub fn width_secs(&self) -> i64 {
        SERIES_WIDTHS[self.width_index]
    }

    /// Bins as (start in Unix seconds, bytes per verdict), in time order, gaps left out.
    pub fn bins(&self) -> impl Iterator<Item = (i64, &[u64; VERDICTS])> + '_ {
        let w = self.width_secs();
        self.bins
            .iter()
            .map(move |(k, v)| (k * w - time::SHANGHAI_OFFSET_SECS, v))
    }

    fn key(&self, unix_secs: i64) -> i64 {
        (unix_secs + time::SHANGHAI_OFFSET_SECS).div_euclid(self.width_secs())
    }

    fn add(&mut self, unix_secs: i64, verdict: usize, bytes: u64) {
        let key = self.key(unix_secs);
        self.bins.entry(key).or_default()[verdict] += bytes;
        while self.span() > SERIES_BINS as i64 && self.width_index + 1 < SERIES_WIDTHS.len() {
            self.coarsen();
        }
    }

    fn span(&self) -> i64 {
        match (self.bins.keys().next(), self.bins.keys().next_back()) {
            (Some(a), Some(b)) => b - a + 1,
            _ => 0,
        }
    }

    fn coarsen(&mut self) {
        let old = self.width_secs();
        self.width_index += 1;
        let factor = self.width_secs() / old;
        let mut merged: BTreeMap<i64, [u64; VERDICTS]> = BTreeMap::new();
        for (k, v) in std::mem::take(&mut self.bins) {
            let slot = merged.entry(k.div_euclid(factor)).or_default();
            for (a, b) in slot.iter_mut().zip(v) {
                *a += b;
            }
        }
        self.bins = merged;
    }
}

/// One recipient in the top-N table.
#[derive(Debug, Clone, Default)]
pub struct RecipientAgg {
    /// Export bytes per verdict.
    pub bytes: [u64; VERDICTS],
    /// Flows (final records).
    pub flows: u64,
    /// Bytes this recipient may have sent before it was (re)admitted after a prune: the true
    /// total lies between `total()` and `total() + error`.
    pub error: u64,
}

impl RecipientAgg {
    /// Total export bytes.
    pub fn total(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

/// Per (enterprise, scenario) figures.
#[derive(Debug, Clone, Default)]
pub struct ScenarioAgg {
    /// Cross-border flow records (final ones).
    pub flows: u64,
    /// Export bytes per verdict.
    pub bytes: [u64; VERDICTS],
    /// Filed export bytes per Beijing day (for the daily cap).
    pub filed_per_day: BTreeMap<Date, u64>,
    /// Flows with export payload per verdict.
    pub export_flows: [u64; VERDICTS],
    /// Recipients of `recipient_not_filed` flows charged to this scenario.
    pub recipients_not_filed: Tally,
    /// Services of `service_not_filed` flows charged to this scenario.
    pub services_not_filed: Tally,
}

impl ScenarioAgg {
    /// Total export bytes.
    pub fn total(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

/// Bounded tally of distinct strings.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Value -> occurrences.
    pub values: BTreeMap<String, u64>,
    /// Occurrences of values that did not fit.
    pub others: u64,
}

impl Tally {
    fn add(&mut self, value: &str, n: u64) {
        if let Some(c) = self.values.get_mut(value) {
            *c += n;
        } else if self.values.len() < FINDING_VALUES {
            self.values.insert(value.to_owned(), n);
        } else {
            self.others += n;
        }
    }

    /// Values by descending count.
    pub fn ranked(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.values.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }
}

/// One example alert kept for a finding.
#[derive(Debug, Clone)]
pub struct Example {
    /// Alert time, Unix microseconds.
    pub micros: i64,
    /// Alert severity.
    pub severity: Severity,
    /// Alert summary, scrubbed.
    pub summary: String,
    /// Scenario id, if any.
    pub scenario: Option<String>,
    /// Enterprise id, if any.
    pub enterprise: Option<String>,
    /// Recipient as the alert names it.
    pub recipient: Option<String>,
    /// Service, e.g. `tcp/443`.
    pub service: Option<String>,
    /// Export bytes the alert covers.
    pub bytes: u64,
    /// Masked evidence as the alert carries it.
    pub evidence: Vec<String>,
    /// Occurrences folded into the alert.
    pub count: u64,
    /// Persons estimate carried by the alert.
    pub persons: Option<u64>,
    /// Days left (`filing_expiring`: working days; `filing_not_yet_valid`: calendar days).
    pub days_left: Option<i64>,
    /// `valid_from` of the scenario, as the alert carries it.
    pub valid_from: Option<String>,
    /// `valid_until` of the scenario, as the alert carries it.
    pub valid_until: Option<String>,
}

/// What the alerts of one kind say about one scenario.
#[derive(Debug, Clone, Default)]
pub struct ScenarioFinding {
    /// Occurrences (sum of `alert.count`).
    pub occurrences: u64,
    /// Export bytes covered.
    pub bytes: u64,
    /// Recipients named by these alerts.
    pub recipients: Tally,
    /// Services named by these alerts.
    pub services: Tally,
    /// Smallest `days_left` carried.
    pub days_left: Option<i64>,
    /// `valid_from` carried by the alerts.
    pub valid_from: Option<String>,
    /// `valid_until` carried by the alerts.
    pub valid_until: Option<String>,
}

/// Flows of one `[[exclude]]` entry.
#[derive(Debug, Clone, Default)]
pub struct ExcludedAgg {
    /// Final flow records.
    pub flows: u64,
    /// Bytes sent by the domestic end.
    pub bytes: u64,
    /// Far ends, by flows.
    pub recipients: Tally,
}

/// Everything known about one alert kind.
#[derive(Debug, Clone)]
pub struct FindingAgg {
    /// Alert events.
    pub alerts: u64,
    /// Occurrences (sum of `alert.count`).
    pub occurrences: u64,
    /// Export bytes covered (sum of `alert.bytes`).
    pub bytes: u64,
    /// Highest severity seen.
    pub max_severity: Severity,
    /// Recipients involved, by occurrences.
    pub recipients: Tally,
    /// Services involved, by occurrences.
    pub services: Tally,
    /// Masked evidence values.
    pub evidence: Tally,
    /// Enterprise ids involved.
    pub enterprises: Tally,
    /// Scenario ids involved.
    pub scenarios: Tally,
    /// A few examples: the most severe, then the largest.
    pub examples: Vec<Example>,
    /// Largest persons estimate carried by these alerts.
    pub persons: Option<u64>,
    /// Per scenario id (at most [`FINDING_VALUES`]).
    pub by_scenario: BTreeMap<String, ScenarioFinding>,
}

impl FindingAgg {
    fn new(severity: Severity) -> Self {
        FindingAgg {
            alerts: 0,
            occurrences: 0,
            bytes: 0,
            max_severity: severity,
            recipients: Tally::default(),
            services: Tally::default(),
            evidence: Tally::default(),
            enterprises: Tally::default(),
            scenarios: Tally::default(),
            examples: Vec::new(),
            persons: None,
            by_scenario: BTreeMap::new(),
        }
    }
}

/// Key of a scenario bucket: (enterprise id, scenario id), either unknown.
pub type ScenarioKey = (Option<String>, Option<String>);

/// The bounded aggregate the report is rendered from.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// Earliest and latest packet time seen (Unix microseconds).
    pub first_micros: Option<i64>,
    /// Latest packet time seen (Unix microseconds).
    pub last_micros: Option<i64>,
    /// When the report is rendered (Unix microseconds), from the clock the caller passes to
    /// [`ReportSink::with_clock`]; `None` = the latest packet time.
    pub rendered_micros: Option<i64>,
    /// Gateways that produced events (at most 32).
    pub gateways: Vec<String>,
    /// Events folded in.
    pub events: u64,
    /// Final flow records (one per flow; running records are not counted).
    pub flow_records: u64,
    /// Final records of cross-border flows.
    pub cross_border_flows: u64,
    /// Final flow records without a verdict (classification off).
    pub unclassified_flows: u64,
    /// Cross-border flows with export payload, per verdict.
    pub export_flows: [u64; VERDICTS],
    /// Export bytes per verdict.
    pub export_bytes: [u64; VERDICTS],
    /// Export bytes per verdict over time.
    pub series: Series,
    /// Not-filed export bytes per Beijing day and hour.
    pub heat: BTreeMap<Date, [u64; 24]>,
    /// Recipients by name: at most 2 × [`RECIPIENT_CAPACITY`], pruned to the largest
    /// [`RECIPIENT_CAPACITY`] when full.
    pub recipients: HashMap<String, RecipientAgg>,
    /// Largest total (plus error) of a pruned recipient.
    pub recipient_floor: u64,
    /// Distinct recipients of exports not covered by any filing (`unfiled`,
    /// `recipient_not_filed`; bounded).
    pub unfiled_recipients: HashSet<String>,
    /// More distinct not-filed recipients than [`UNFILED_RECIPIENT_CAPACITY`] were seen.
    pub unfiled_recipients_overflow: bool,
    /// Recipients of `unfiled` exports (no filing lists the source), by flows.
    pub unfiled_targets: Tally,
    /// Per (enterprise, scenario) figures.
    pub scenarios: BTreeMap<ScenarioKey, ScenarioAgg>,
    /// Per alert kind figures.
    pub findings: BTreeMap<AlertKind, FindingAgg>,
    /// Largest persons estimate per enterprise id ("" when unknown).
    pub persons: BTreeMap<String, u64>,
    /// Last `stats` event per gateway.
    pub stats: BTreeMap<String, Stats>,
    /// Excluded infrastructure traffic per `[[exclude]]` entry name (at most
    /// [`EXCLUDE_CAPACITY`]; later names fold into "…").
    pub excluded: BTreeMap<String, ExcludedAgg>,
    /// Running export totals of long flows (key: hash of flow identity).
    running: HashMap<u64, u64>,
}

impl ReportData {
    /// An empty aggregate.
    pub fn new() -> Self {
        ReportData::default()
    }

    /// Fold one event in.
    pub fn add(&mut self, event: &Event) {
        self.events += 1;
        if self.gateways.len() < 32 {
            let gateway = scrub(&event.gateway);
            if !self.gateways.contains(&gateway) {
                self.gateways.push(gateway);
            }
        }
        match event.event_type {
            EventType::Flow => self.add_flow(event),
            EventType::Alert => self.add_alert(event),
            EventType::Sketch => {}
            EventType::Stats => {
                if let Some(s) = &event.stats {
                    if self.stats.len() < 64 || self.stats.contains_key(&event.gateway) {
                        self.stats.insert(event.gateway.clone(), s.clone());
                    }
                }
                // The stats timestamp may be wall-clock time: it does not extend the span.
            }
        }
    }

    fn see_time(&mut self, t: Option<i64>) {
        if let Some(t) = t {
            self.first_micros = Some(self.first_micros.map_or(t, |f| f.min(t)));
            self.last_micros = Some(self.last_micros.map_or(t, |l| l.max(t)));
        }
    }

    fn add_flow(&mut self, event: &Event) {
        let (start, end, running) = match &event.flow {
            Some(f) => (
                parse_time_micros(&f.start),
                parse_time_micros(&f.end),
                f.reason == "active_timeout",
            ),
            None => (None, None, false),
        };
        let at = end.or_else(|| parse_time_micros(&event.timestamp));
        self.see_time(start);
        self.see_time(at);

        let Some(verdict) = &event.verdict else {
            if !running {
                self.flow_records += 1;
                self.unclassified_flows += 1;
            }
            return;
        };
        let v = i18n::verdict_index(verdict.status);
        let cross_border = verdict.status != VerdictStatus::NotCrossBorder;
        let excluded = verdict.status == VerdictStatus::Excluded;

        // Active-timeout records carry running totals: count only what is new.
        let reported = event.export_bytes.unwrap_or(0);
        let key = flow_key(event);
        let before = if running {
            let prev = self.running.get(&key).copied();
            if prev.is_some() || self.running.len() < RUNNING_CAPACITY {
                self.running.insert(key, reported);
            }
            prev.unwrap_or(0)
        } else {
            self.running.remove(&key).unwrap_or(0)
        };
        let bytes = reported.saturating_sub(before);

        if !running {
            self.flow_records += 1;
            if cross_border {
                self.cross_border_flows += 1;
                if reported > 0 {
                    self.export_flows[v] += 1;
                }
            }
        }
        if !cross_border {
            return;
        }
        self.export_bytes[v] += bytes;
        if excluded {
            // Infrastructure traffic: counted apart, never part of the export figures.
            let name = verdict
                .exclude
                .as_deref()
                .map_or_else(|| "?".to_owned(), scrub);
            let name =
                if self.excluded.len() < EXCLUDE_CAPACITY || self.excluded.contains_key(&name) {
                    name
                } else {
                    "…".to_owned()
                };
            let agg = self.excluded.entry(name).or_default();
            agg.bytes += bytes;
            if !running {
                agg.flows += 1;
                agg.recipients.add(&recipient_of(event), 1);
            }
            return;
        }

        let scenario_key: ScenarioKey = (
            verdict.enterprise.as_deref().map(scrub),
            verdict.scenario.as_deref().map(scrub),
        );
        let scenario_key = if self.scenarios.len() < SCENARIO_CAPACITY
            || self.scenarios.contains_key(&scenario_key)
        {
            scenario_key
        } else {
            (None, Some("…".to_owned()))
        };
        let day = at.map(|t| time::shanghai(t.div_euclid(1_000_000)));
        let agg = self.scenarios.entry(scenario_key).or_default();
        if !running {
            agg.flows += 1;
            if reported > 0 {
                agg.export_flows[v] += 1;
                match verdict.status {
                    VerdictStatus::RecipientNotFiled => {
                        agg.recipients_not_filed.add(&recipient_of(event), 1);
                    }
                    VerdictStatus::ServiceNotFiled => {
                        agg.services_not_filed.add(&service_of(event), 1);
                    }
                    _ => {}
                }
            }
        }
        agg.bytes[v] += bytes;
        if verdict.status == VerdictStatus::Filed {
            if let Some(local) = day {
                if agg.filed_per_day.len() < DAY_CAPACITY
                    || agg.filed_per_day.contains_key(&local.date)
                {
                    *agg.filed_per_day.entry(local.date).or_default() += bytes;
                }
            }
        }
        if bytes == 0 {
            return;
        }
        if let Some(t) = at {
            self.series.add(t.div_euclid(1_000_000), v, bytes);
        }
        let not_filed = verdict.status != VerdictStatus::Filed;
        if not_filed {
            if let Some(local) = day {
                if self.heat.len() < DAY_CAPACITY || self.heat.contains_key(&local.date) {
                    let hour = (local.second_of_day / 3600).min(23) as usize;
                    self.heat.entry(local.date).or_default()[hour] += bytes;
                }
            }
        }
        let recipient = recipient_of(event);
        let uncovered = matches!(
            verdict.status,
            VerdictStatus::Unfiled | VerdictStatus::RecipientNotFiled
        );
        if verdict.status == VerdictStatus::Unfiled && !running {
            self.unfiled_targets.add(&recipient, 1);
        }
        if uncovered && !self.unfiled_recipients.contains(&recipient) {
            if self.unfiled_recipients.len() < UNFILED_RECIPIENT_CAPACITY {
                self.unfiled_recipients.insert(recipient.clone());
            } else {
                self.unfiled_recipients_overflow = true;
            }
        }
        self.add_recipient(recipient, v, bytes, !running);
    }

    fn add_recipient(&mut self, name: String, verdict: usize, bytes: u64, new_flow: bool) {
        if let Some(r) = self.recipients.get_mut(&name) {
            r.bytes[verdict] += bytes;
            r.flows += u64::from(new_flow);
            return;
        }
        let mut agg = RecipientAgg {
            error: self.recipient_floor,
            ..RecipientAgg::default()
        };
        agg.bytes[verdict] = bytes;
        agg.flows = u64::from(new_flow);
        self.recipients.insert(name, agg);
        if self.recipients.len() >= 2 * RECIPIENT_CAPACITY {
            self.prune_recipients();
        }
    }

    /// Keep the [`RECIPIENT_CAPACITY`] largest recipients. A recipient seen later may have sent
    /// up to the largest pruned total before, which its `error` records.
    fn prune_recipients(&mut self) {
        let mut totals: Vec<u64> = self.recipients.values().map(RecipientAgg::total).collect();
        totals.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&threshold) = totals.get(RECIPIENT_CAPACITY - 1) else {
            return;
        };
        let mut kept = 0usize;
        let mut floor = self.recipient_floor;
        self.recipients.retain(|_, r| {
            let t = r.total();
            if t > threshold || (t == threshold && kept < RECIPIENT_CAPACITY) {
                kept += 1;
                true
            } else {
                floor = floor.max(t + r.error);
                false
            }
        });
        self.recipient_floor = floor;
    }

    fn add_alert(&mut self, event: &Event) {
        let t = parse_time_micros(&event.timestamp);
        self.see_time(t);
        let Some(alert) = &event.alert else { return };
        let f = self
            .findings
            .entry(alert.kind)
            .or_insert_with(|| FindingAgg::new(alert.severity));
        f.alerts += 1;
        f.occurrences += alert.count.max(1);
        f.bytes += alert.bytes;
        f.max_severity = f.max_severity.max(alert.severity);
        let recipient = alert.recipient.as_deref().map(scrub);
        let service = alert.service.as_deref().map(scrub);
        if let Some(r) = &recipient {
            f.recipients.add(r, alert.count.max(1));
        }
        if let Some(s) = &service {
            f.services.add(s, alert.count.max(1));
        }
        let evidence: Vec<String> = alert.evidence.iter().take(8).map(|e| scrub(e)).collect();
        for e in &evidence {
            f.evidence.add(e, 1);
        }
        if let Some(e) = &alert.enterprise {
            f.enterprises.add(&scrub(e), 1);
        }
        if let Some(s) = &alert.scenario {
            let id = scrub(s);
            f.scenarios.add(&id, 1);
            if f.by_scenario.len() < FINDING_VALUES || f.by_scenario.contains_key(&id) {
                let d = f.by_scenario.entry(id).or_default();
                d.occurrences += alert.count.max(1);
                d.bytes += alert.bytes;
                if let Some(r) = &recipient {
                    d.recipients.add(r, alert.count.max(1));
                }
                if let Some(sv) = &service {
                    d.services.add(sv, alert.count.max(1));
                }
                if let Some(left) = alert.days_left {
                    d.days_left = Some(d.days_left.map_or(left, |l| l.min(left)));
                }
                if alert.valid_from.is_some() {
                    d.valid_from = alert.valid_from.as_deref().map(scrub);
                }
                if alert.valid_until.is_some() {
                    d.valid_until = alert.valid_until.as_deref().map(scrub);
                }
            }
        }
        if let Some(p) = alert.persons {
            f.persons = Some(f.persons.map_or(p, |q| q.max(p)));
            let who = alert.enterprise.as_deref().map(scrub).unwrap_or_default();
            if self.persons.len() < SCENARIO_CAPACITY || self.persons.contains_key(&who) {
                let slot = self.persons.entry(who).or_default();
                *slot = (*slot).max(p);
            }
        }
        let example = Example {
            micros: t.unwrap_or(0),
            severity: alert.severity,
            summary: scrub(&alert.summary),
            scenario: alert.scenario.as_deref().map(scrub),
            enterprise: alert.enterprise.as_deref().map(scrub),
            recipient,
            service,
            bytes: alert.bytes,
            evidence,
            count: alert.count.max(1),
            persons: alert.persons,
            days_left: alert.days_left,
            valid_from: alert.valid_from.as_deref().map(scrub),
            valid_until: alert.valid_until.as_deref().map(scrub),
        };
        if f.examples.len() < FINDING_EXAMPLES {
            f.examples.push(example);
        } else if let Some(weakest) = f
            .examples
            .iter_mut()
            .min_by_key(|e| (e.severity, e.bytes))
            .filter(|e| (e.severity, e.bytes) < (example.severity, example.bytes))
        {
            *weakest = example;
        }
    }

    /// Export bytes of flows covered by a filing.
    pub fn filed_bytes(&self) -> u64 {
        self.export_bytes[i18n::verdict_index(VerdictStatus::Filed)]
    }

    /// Export bytes of cross-border flows not covered by a filing (every verdict but `filed`).
    pub fn not_filed_bytes(&self) -> u64 {
        NOT_FILED
            .iter()
            .map(|v| self.export_bytes[i18n::verdict_index(*v)])
            .sum()
    }

    /// Flows with export payload not covered by any filing (`unfiled`, `recipient_not_filed`).
    pub fn uncovered_exports(&self) -> u64 {
        self.export_flows[i18n::verdict_index(VerdictStatus::Unfiled)]
            + self.export_flows[i18n::verdict_index(VerdictStatus::RecipientNotFiled)]
    }

    /// Flows with export payload that have a filing but break its conditions.
    pub fn deviating_exports(&self) -> u64 {
        [
            VerdictStatus::ServiceNotFiled,
            VerdictStatus::FilingExpired,
            VerdictStatus::FilingNotYetValid,
            VerdictStatus::OutsideWindow,
        ]
        .iter()
        .map(|v| self.export_flows[i18n::verdict_index(*v)])
        .sum()
    }

    /// Flows with export payload (every cross-border verdict but `excluded`).
    pub fn exports(&self) -> u64 {
        self.export_flows[i18n::verdict_index(VerdictStatus::Filed)]
            + NOT_FILED
                .iter()
                .map(|v| self.export_flows[i18n::verdict_index(*v)])
                .sum::<u64>()
    }

    /// Excluded infrastructure traffic: (flows, bytes).
    pub fn excluded_totals(&self) -> (u64, u64) {
        self.excluded
            .values()
            .fold((0, 0), |(f, b), e| (f + e.flows, b + e.bytes))
    }

    /// Sum of the last `stats` event of every gateway.
    pub fn stats_total(&self) -> Option<Stats> {
        if self.stats.is_empty() {
            return None;
        }
        let mut total = Stats::default();
        for s in self.stats.values() {
            total.packets += s.packets;
            total.bytes += s.bytes;
            total.flows += s.flows;
            total.evictions += s.evictions;
            for (k, v) in &s.drops {
                *total.drops.entry(k.clone()).or_default() += v;
            }
        }
        Some(total)
    }

    /// Recipients by descending export bytes, at most `n`.
    pub fn top_recipients(&self, n: usize) -> Vec<(&str, &RecipientAgg)> {
        let mut v: Vec<(&str, &RecipientAgg)> = self
            .recipients
            .iter()
            .map(|(k, r)| (k.as_str(), r))
            .collect();
        v.sort_by(|a, b| b.1.total().cmp(&a.1.total()).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }
}

/// Verdicts of cross-border flows that a filing does not (fully) cover.
pub const NOT_FILED: [VerdictStatus; 6] = [
    VerdictStatus::Unfiled,
    VerdictStatus::RecipientNotFiled,
    VerdictStatus::ServiceNotFiled,
    VerdictStatus::FilingExpired,
    VerdictStatus::FilingNotYetValid,
    VerdictStatus::OutsideWindow,
];

/// The responder service of a flow, e.g. `tcp/443`, as alerts name it.
pub fn service_of(event: &Event) -> String {
    let proto = event.proto.as_deref().unwrap_or("ip").to_ascii_lowercase();
    match event.dest_port {
        Some(p) => scrub(&format!("{proto}/{p}")),
        None => scrub(&proto),
    }
}

fn flow_key(event: &Event) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    event.gateway.hash(&mut h);
    event.flow_id.hash(&mut h);
    event.src_ip.hash(&mut h);
    event.src_port.hash(&mut h);
    event.dest_ip.hash(&mut h);
    event.dest_port.hash(&mut h);
    h.finish()
}

/// The foreign end of a flow as a recipient label: a trusted name if one is known, else the
/// address. An ECH outer SNI is a cover name and is not used.
pub fn recipient_of(event: &Event) -> String {
    let tls = event
        .tls
        .as_ref()
        .filter(|t| !t.ech)
        .and_then(|t| t.sni.as_deref());
    let quic = event
        .quic
        .as_ref()
        .filter(|t| !t.ech)
        .and_then(|t| t.sni.as_deref());
    let http = event.http.as_ref().and_then(|h| h.hostname.as_deref());
    let name = tls
        .or(quic)
        .or(http)
        .or(event.dns_name.as_deref())
        .filter(|n| !n.is_empty());
    let foreign_ip = if event.direction == Some(Direction::Import) {
        event.src_ip.as_deref()
    } else {
        event.dest_ip.as_deref()
    };
    match (name, foreign_ip) {
        (Some(n), _) => scrub(&n.to_ascii_lowercase()),
        (None, Some(ip)) => scrub(ip),
        (None, None) => "?".to_owned(),
    }
}

/// Copy of `s` (cut to [`MAX_TEXT`] bytes) in which every run of digits that could be a raw
/// personal identifier is masked: an 18-character resident ID with a valid check character, an
/// 11-digit mainland mobile number (optionally prefixed by 86), and any run of 13 or more digits
/// (card numbers, with or without a valid Luhn digit). Already-masked values pass unchanged.
pub fn scrub(s: &str) -> String {
    let mut cut = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let s = &s[..cut];
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let mut end = i;
        if end - start == 17 && i < bytes.len() && (bytes[i] == b'X' || bytes[i] == b'x') {
            end += 1;
        }
        let run = &bytes[start..end];
        if let Some(masked) = mask_run(run) {
            out.push_str(&s[last..start]);
            out.push_str(&masked);
            last = end;
        }
        i = end;
    }
    out.push_str(&s[last..]);
    out
}

fn mask_run(run: &[u8]) -> Option<String> {
    let keep = |head: usize, tail: usize| -> String {
        let mut m = String::with_capacity(run.len());
        for (i, b) in run.iter().enumerate() {
            if i < head || i >= run.len() - tail {
                m.push(char::from(*b));
            } else {
                m.push('*');
            }
        }
        m
    };
    let is_mobile = |r: &[u8]| r.len() == 11 && r[0] == b'1' && (b'3'..=b'9').contains(&r[1]);
    if run.len() == 18 && crossline_config::checks::resident_id_check(run) {
        Some(keep(6, 4))
    } else if is_mobile(run) {
        Some(keep(3, 4))
    } else if run.len() == 13 && run.starts_with(b"86") && is_mobile(&run[2..]) {
        Some(keep(5, 4))
    } else if run.len() >= 13 {
        Some(keep(4, 4))
    } else {
        None
    }
}

pub use crossline_config::event::parse_timestamp_micros as parse_time_micros;

/// A sink that aggregates events and writes the HTML report at the end.
#[derive(Debug)]
pub struct ReportSink {
    path: PathBuf,
    registry: Arc<Registry>,
    lang: Lang,
    data: ReportData,
    finished: bool,
    /// Wall clock (Unix microseconds) read when the report is rendered.
    clock: Option<fn() -> i64>,
}

impl ReportSink {
    /// A sink that will write the report to `path` in `lang`.
    pub fn new(path: impl Into<PathBuf>, registry: Arc<Registry>, lang: Lang) -> Self {
        ReportSink {
            path: path.into(),
            registry,
            lang,
            data: ReportData::new(),
            finished: false,
            clock: None,
        }
    }

    /// The report says when it was rendered, read from `clock` (the binary's wall clock).
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Like [`ReportSink::new`], but checks now that the report can be written (creates the
    /// file's temporary sibling), so a bad path fails before a long analysis, not after it.
    pub fn create(
        path: impl Into<PathBuf>,
        registry: Arc<Registry>,
        lang: Lang,
    ) -> Result<Self, ReportError> {
        let sink = ReportSink::new(path, registry, lang);
        let tmp = temporary_path(&sink.path);
        std::fs::write(&tmp, b"").map_err(|source| ReportError::Write {
            path: sink.path.clone(),
            source,
        })?;
        Ok(sink)
    }

    /// The aggregate so far.
    pub fn data(&self) -> &ReportData {
        &self.data
    }

    /// Fold one event in (the serialised `line` is not needed).
    pub fn write_event(&mut self, event: &Event) {
        self.data.add(event);
    }

    /// Render and write the report (once; later calls do nothing).
    pub fn write_report(&mut self) -> Result<(), ReportError> {
        if self.finished {
            return Ok(());
        }
        if let Some(clock) = self.clock {
            self.data.rendered_micros = Some(clock());
        }
        let html = render(&self.data, &self.registry, self.lang);
        write_atomically(&self.path, html.as_bytes()).map_err(|source| ReportError::Write {
            path: self.path.clone(),
            source,
        })?;
        self.finished = true;
        Ok(())
    }
}

impl crate::sink::EventSink for ReportSink {
    fn write(&mut self, event: &Event, _line: &[u8]) -> std::io::Result<()> {
        self.write_event(event);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.write_report().map_err(std::io::Error::from)
    }
}

impl Drop for ReportSink {
    /// A run that ended without `finish()` leaves no half-made file behind.
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(temporary_path(&self.path));
        }
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary_path(path);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prop_assert;
    use proptest::prop_assert_eq;

    #[test]
    fn parses_event_timestamps() {
        assert_eq!(
            parse_time_micros("2026-03-02T09:14:07.118Z"),
            Some(1_772_442_847_118_000)
        );
        assert_eq!(
            parse_time_micros("2026-03-02T17:14:07.118+08:00"),
            Some(1_772_442_847_118_000)
        );
        assert_eq!(
            parse_time_micros("2026-03-02T09:14:07Z"),
            Some(1_772_442_847_000_000)
        );
        assert_eq!(parse_time_micros("2026-02-30T09:14:07Z"), None);
        assert_eq!(parse_time_micros("garbage"), None);
        assert_eq!(parse_time_micros("2026-03-02T09:14:07.118"), None);
    }

    #[test]
    fn scrub_masks_raw_identifiers_only() {
        assert_eq!(
            scrub("id 11010519491231002X sent"),
            "id 110105********002X sent"
        );
        assert_eq!(scrub("tel 13812345678."), "tel 138****5678.");
        assert_eq!(scrub("+8613812345678"), "+86138****5678");
        assert_eq!(
            scrub("card 6222000000000000004"),
            "card 6222***********0004"
        );
        // Inside words too: a raw value glued to a label is still masked.
        assert_eq!(scrub("tel13812345678x"), "tel138****5678x");
        assert_eq!(
            scrub("ID:11010519491231002Xabc"),
            "ID:110105********002Xabc"
        );
        // Masked values, short numbers, addresses and host names are left alone.
        for s in [
            "110105********002X",
            "138****5678",
            "sent 18.2 MB to 203.0.113.50:22",
            "a1381234567b.example.com:443",
            "port 443",
        ] {
            assert_eq!(scrub(s), s);
        }
    }

    proptest::proptest! {
        #[test]
        fn scrub_never_panics_and_leaves_no_identifier(s in "\\PC{0,80}", d in "[0-9]{11,19}") {
            for input in [s.clone(), format!("{s}{d}"), format!("{d} {s}"), format!("x{s}-{d}.y")] {
                let out = scrub(&input);
                prop_assert_eq!(scrub(&out), out.clone(), "idempotent");
                // No run of 13+ digits and no mobile-like 11-digit run is left.
                for run in out.split(|c: char| !c.is_ascii_digit()) {
                    prop_assert!(run.len() < 13, "unmasked run {run:?} in {out:?}");
                    let mobile = run.len() == 11
                        && run.starts_with('1')
                        && (b'3'..=b'9').contains(&run.as_bytes()[1]);
                    prop_assert!(!mobile, "unmasked mobile {run:?} in {out:?}");
                }
            }
        }

        #[test]
        fn timestamps_round_trip(micros in 0i64..4_102_444_800_000_000) {
            let s = crossline_config::event::format_timestamp_micros(micros);
            prop_assert_eq!(parse_time_micros(&s), Some(micros - micros.rem_euclid(1000)));
        }

        #[test]
        fn time_parser_never_panics(s in "\\PC{0,40}") {
            let _ = parse_time_micros(&s);
        }
    }

    #[test]
    fn series_coarsens_but_keeps_totals() {
        let mut s = Series::default();
        let t0 = 1_772_442_847;
        for i in 0..10_000i64 {
            s.add(t0 + i * 7, 0, 10);
        }
        assert!(s.bins.len() <= SERIES_BINS);
        assert_eq!(s.bins().map(|(_, v)| v[0]).sum::<u64>(), 100_000);
        assert!(s.width_secs() >= 600);
    }
}
