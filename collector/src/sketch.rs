//! Enterprise-wide judgments from the agents' `sketch` events.
//!
//! The law counts persons per data processor across every line it uses, and a scenario's daily
//! cap is the enterprise's, whichever gateway the bytes cross. Every agent sends, per
//! enterprise, its complete figures so far (see `crossline_config::event::Sketch`); this module
//! keeps each gateway's latest figure in the store (table `sketch_figures`, behind the
//! [`Store`] trait) and judges the merged one:
//!
//! - persons per enterprise, Beijing year and category (`personal`, `sensitive`): the union of
//!   every gateway's HyperLogLog registers (a gateway's registers only grow: a resent or older
//!   sketch is merged by element-wise maximum and changes nothing);
//! - bytes per scenario and Beijing day: the sum over gateways of each gateway's largest figure
//!   (the figures are cumulative, so a resent or duplicated sketch never counts twice).
//!
//! Persons merge only when every gateway hashes with the same PI key: the first fingerprint
//! seen for an enterprise is established (table `sketch_keys`); a sketch with another
//! fingerprint is refused — counted and logged with the reason, never merged — while the batch
//! carrying it is stored as usual (refusing the batch would set aside the alerts it carries).
//!
//! A `persons_threshold` (80% and 100% of the limit the agents report, per year) or
//! `volume_cap_exceeded` (the cap and twice the cap, per day) is raised with `scope:
//! "enterprise"` and the gateways involved when the merged figure reaches a level that no single
//! gateway's own figure reaches (a gateway that reaches it alone raises its own alert). Each
//! level is raised once (table `sketch_alerted`). The alert is stored through [`Store::ingest`]
//! like any other — listed, grouped into an incident and notified.

use crate::store::{Batch, BatchEvent, IngestOutcome, SketchRow, SketchTables, Store, StoreError};
use crossline_config::event::{
    format_eve_timestamp, Alert, AlertKind, Event, EventType, Severity, Sketch,
};
use crossline_config::sketch::HyperLogLog;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A random non-zero stream id for the batches one collector process stores its own
/// enterprise-wide alerts in, drawn once at start like an agent's spool's: replicas sharing a
/// database (and restarts) never collide on (gateway, stream, sequence), even when started in
/// the same millisecond.
pub fn enterprise_stream() -> u64 {
    loop {
        let s: u64 = rand::random();
        if s != 0 {
            return s;
        }
    }
}

/// Counters of sketches handled since start.
#[derive(Debug, Default)]
pub struct SketchCounters {
    /// Sketch events merged.
    pub merged: AtomicU64,
    /// Sketch events refused because their PI key fingerprint differs from the enterprise's.
    pub refused_key: AtomicU64,
    /// Sketch entries that did not decode (bad registers or day), skipped.
    pub invalid: AtomicU64,
    /// Enterprise-wide alerts raised.
    pub alerts: AtomicU64,
}

/// What merging a batch's sketches did (for metrics).
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Enterprise-wide alerts raised (already stored).
    pub alerts: Vec<Event>,
    /// Sketch events merged.
    pub merged: u64,
    /// Sketch events refused: another PI key fingerprint.
    pub refused_key: u64,
    /// Sketch entries skipped: registers or day that do not decode.
    pub invalid: u64,
    /// Merged persons: (enterprise, year, category, estimate, limit).
    pub persons: Vec<(String, i32, String, u64, Option<u64>)>,
    /// Merged bytes: (enterprise, day, scenario, bytes, cap).
    pub volumes: Vec<(String, String, String, u64, Option<u64>)>,
}

/// The sketch merger.
#[derive(Debug)]
pub struct Sketches {
    store: Arc<dyn Store>,
    /// One merge at a time: read, merge, write and judge must not interleave.
    lock: Mutex<()>,
    counters: SketchCounters,
    /// This process's stream for enterprise-wide alerts (see [`enterprise_stream`]).
    stream: u64,
    sequence: AtomicU64,
}

/// `persons:<year>:<category>`.
fn persons_subject(year: i32, category: &str) -> String {
    format!("persons:{year}:{category}")
}

/// `bytes:<day>:<scenario>`.
fn bytes_subject(day: &str, scenario: &str) -> String {
    format!("bytes:{day}:{scenario}")
}

fn valid_day(day: &str) -> bool {
    let b = day.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

impl Sketches {
    /// A merger over `store`, started at `start_ms`: its enterprise-wide alerts go to a fresh
    /// random stream (see [`enterprise_stream`]), numbered from `start_ms` × 1000.
    pub fn new(store: Arc<dyn Store>, start_ms: i64) -> Sketches {
        let start = start_ms.max(0) as u64;
        Sketches {
            store,
            lock: Mutex::new(()),
            counters: SketchCounters::default(),
            stream: enterprise_stream(),
            sequence: AtomicU64::new(start.saturating_mul(1000).max(1)),
        }
    }

    /// The stream this merger stores its enterprise-wide alerts in.
    pub fn stream(&self) -> u64 {
        self.stream
    }

    /// The counters.
    pub fn counters(&self) -> &SketchCounters {
        &self.counters
    }

    /// Merge every sketch event of a stored batch (one transaction) and raise the
    /// enterprise-wide alerts due.
    pub fn apply(&self, batch: &Batch, now_ms: i64) -> Result<ApplyReport, StoreError> {
        let mut report = ApplyReport::default();
        let sketches: Vec<&Sketch> = batch
            .events
            .iter()
            .filter(|be| be.event.event_type == EventType::Sketch)
            .filter_map(|be| be.event.sketch.as_ref())
            .collect();
        if sketches.is_empty() {
            return Ok(report);
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut alerts = Vec::new();
        self.store.sketch_transaction(&mut |t| {
            // A retried transaction starts over.
            report = ApplyReport::default();
            alerts.clear();
            for s in &sketches {
                self.apply_one(t, &batch.gateway, s, now_ms, &mut report, &mut alerts)?;
            }
            Ok(())
        })?;
        // Stored once the figures and judged levels are committed (an alert is a batch of its
        // own, committed by the store's writer).
        for a in &alerts {
            self.store_alert(&batch.gateway, a, now_ms)?;
        }
        report.alerts.extend(alerts);
        Ok(report)
    }

    fn apply_one(
        &self,
        t: &mut dyn SketchTables,
        gateway: &str,
        s: &Sketch,
        now_ms: i64,
        report: &mut ApplyReport,
        alerts: &mut Vec<Event>,
    ) -> Result<(), StoreError> {
        let ent = s.enterprise.as_str();
        if let Some(established) = t.key(ent, &s.key_fingerprint, gateway, now_ms)? {
            self.counters.refused_key.fetch_add(1, Ordering::Relaxed);
            report.refused_key += 1;
            eprintln!(
                "crossline-collector: sketch of enterprise {ent:?} from gateway {gateway:?} refused: PI key fingerprint {} differs from the enterprise's established {established} (every gateway of an enterprise must hash persons with the same detect.pi_key)",
                s.key_fingerprint
            );
            return Ok(());
        }
        self.counters.merged.fetch_add(1, Ordering::Relaxed);
        report.merged += 1;
        for p in &s.persons {
            let regs = match HyperLogLog::decode(&p.registers) {
                Ok(h) => h,
                Err(e) => {
                    self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                    report.invalid += 1;
                    eprintln!(
                        "crossline-collector: sketch of enterprise {ent:?} from gateway {gateway:?}: persons {} {}: {e}; skipped",
                        p.year, p.category
                    );
                    continue;
                }
            };
            if p.category != "personal" && p.category != "sensitive" {
                self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                report.invalid += 1;
                continue;
            }
            let subject = persons_subject(p.year, &p.category);
            let rows = t.rows(ent, &subject)?;
            let mut mine = regs;
            if let Some(old) = rows.iter().find(|r| r.gateway == gateway) {
                if let Ok(h) = HyperLogLog::decode(&old.data) {
                    mine.merge(&h);
                }
            }
            let row = SketchRow {
                subject: subject.clone(),
                gateway: gateway.to_string(),
                data: mine.encode(),
                value: mine.estimate(),
                limit: p.limit,
                updated_ms: now_ms,
            };
            t.put(ent, &row)?;
            // The union only grows: fold this gateway's registers into the stored union (row
            // of gateway `*`), one decode instead of one per gateway.
            let mut u = match rows.iter().find(|r| r.gateway == UNION) {
                Some(r) => HyperLogLog::decode(&r.data).unwrap_or_default(),
                None => union(&rows).0,
            };
            u.merge(&mine);
            let mut rows: Vec<SketchRow> =
                rows.into_iter().filter(|r| r.gateway != UNION).collect();
            match rows.iter_mut().find(|r| r.gateway == gateway) {
                Some(r) => *r = row,
                None => rows.push(row),
            }
            t.put(
                ent,
                &SketchRow {
                    subject: subject.clone(),
                    gateway: UNION.to_string(),
                    data: u.encode(),
                    value: u.estimate(),
                    limit: rows.iter().filter_map(|r| r.limit).max(),
                    updated_ms: now_ms,
                },
            )?;
            report.persons.push((
                ent.to_string(),
                p.year,
                p.category.clone(),
                u.estimate(),
                rows.iter().filter_map(|r| r.limit).max(),
            ));
            if let Some(a) =
                self.judge_persons(t, ent, gateway, p.year, &p.category, &rows, &u, now_ms)?
            {
                alerts.push(a);
            }
        }
        for v in &s.volumes {
            if !valid_day(&v.day) || v.scenario.is_empty() {
                self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                report.invalid += 1;
                continue;
            }
            let subject = bytes_subject(&v.day, &v.scenario);
            let rows = t.rows(ent, &subject)?;
            let old = rows
                .iter()
                .find(|r| r.gateway == gateway)
                .map_or(0, |r| r.value);
            let row = SketchRow {
                subject: subject.clone(),
                gateway: gateway.to_string(),
                data: String::new(),
                value: old.max(v.bytes),
                limit: v.cap,
                updated_ms: now_ms,
            };
            t.put(ent, &row)?;
            let rows = t.rows(ent, &subject)?;
            report.volumes.push((
                ent.to_string(),
                v.day.clone(),
                v.scenario.clone(),
                rows.iter().map(|r| r.value).sum(),
                rows.iter().filter_map(|r| r.limit).max(),
            ));
            if let Some(a) = Self::judge_bytes(t, ent, gateway, &v.day, &v.scenario, &rows, now_ms)?
            {
                alerts.push(a);
            }
        }
        Ok(())
    }

    /// Mark every level up to `level`; true when `alert_level` was newly marked and no single
    /// gateway reaches it alone.
    fn mark_levels(
        t: &mut dyn SketchTables,
        ent: &str,
        subject: &str,
        levels: &[u64],
        reached: u64,
        alone: u64,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let mut newest = None;
        for &l in levels.iter().filter(|l| **l <= reached) {
            if t.mark(ent, subject, l, now_ms)? && l > alone {
                newest = Some(l);
            }
        }
        Ok(newest)
    }

    #[allow(clippy::too_many_arguments)]
    fn judge_persons(
        &self,
        t: &mut dyn SketchTables,
        ent: &str,
        gateway: &str,
        year: i32,
        category: &str,
        rows: &[SketchRow],
        union: &HyperLogLog,
        now_ms: i64,
    ) -> Result<Option<Event>, StoreError> {
        let Some(limit) = rows.iter().filter_map(|r| r.limit).max() else {
            return Ok(None);
        };
        if limit == 0 {
            return Ok(None);
        }
        let gateways: Vec<String> = rows
            .iter()
            .filter(|r| r.value > 0)
            .map(|r| r.gateway.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let est = union.estimate();
        let pct = |e: u64| -> u64 {
            if e >= limit {
                100
            } else if e * 10 >= limit * 8 {
                80
            } else {
                0
            }
        };
        let alone = rows.iter().map(|r| pct(r.value)).max().unwrap_or(0);
        let subject = persons_subject(year, category);
        let Some(level) = Self::mark_levels(t, ent, &subject, &[80, 100], pct(est), alone, now_ms)?
        else {
            return Ok(None);
        };
        let what = if category == "sensitive" {
            "sensitive personal information (bank cards)"
        } else {
            "personal information"
        };
        let mut e = alert(
            AlertKind::PersonsThreshold,
            AlertKind::PersonsThreshold.default_severity(),
            gateway,
            ent,
            None,
            now_ms,
            format!(
                "{ent} has exported {what} of about {est} distinct persons in {year} across gateways {} (enterprise-wide, no gateway alone reaches it): {level}% of the {limit} limit",
                gateways.join(", ")
            ),
            gateways,
        );
        if let Some(a) = e.alert.as_mut() {
            a.persons = Some(est);
        }
        Ok(Some(e))
    }

    fn judge_bytes(
        t: &mut dyn SketchTables,
        ent: &str,
        gateway: &str,
        day: &str,
        scenario: &str,
        rows: &[SketchRow],
        now_ms: i64,
    ) -> Result<Option<Event>, StoreError> {
        let Some(cap) = rows.iter().filter_map(|r| r.limit).max() else {
            return Ok(None);
        };
        let total: u64 = rows.iter().map(|r| r.value).sum();
        let level = |b: u64| -> u64 {
            if b > cap.saturating_mul(2) {
                2
            } else if b > cap {
                1
            } else {
                0
            }
        };
        let alone = rows.iter().map(|r| level(r.value)).max().unwrap_or(0);
        let subject = bytes_subject(day, scenario);
        let Some(l) = Self::mark_levels(t, ent, &subject, &[1, 2], level(total), alone, now_ms)?
        else {
            return Ok(None);
        };
        let gateways: Vec<String> = rows
            .iter()
            .filter(|r| r.value > 0)
            .map(|r| r.gateway.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (sev, what) = if l >= 2 {
            (Severity::High, "twice the daily cap")
        } else {
            (Severity::Med, "the daily cap")
        };
        let mut e = alert(
            AlertKind::VolumeCapExceeded,
            sev,
            gateway,
            ent,
            Some(scenario),
            now_ms,
            format!(
                "Scenario {scenario} exported {total} bytes on {day} (Beijing) across gateways {} (enterprise-wide, no gateway alone passes it), more than {what} of {cap} bytes",
                gateways.join(", ")
            ),
            gateways,
        );
        if let Some(a) = e.alert.as_mut() {
            a.bytes = total;
        }
        Ok(Some(e))
    }

    /// Store an enterprise-wide alert as a one-event batch of this process's own stream.
    fn store_alert(&self, gateway: &str, e: &Event, now_ms: i64) -> Result<(), StoreError> {
        let json = serde_json::to_string(e).unwrap_or_default();
        let batch = Batch {
            gateway: gateway.to_string(),
            stream: self.stream,
            sequence: self.sequence.fetch_add(1, Ordering::Relaxed),
            received_at_ms: now_ms,
            events: vec![BatchEvent {
                event: e.clone(),
                ts_ms: now_ms,
                json,
                time_flag: None,
            }],
        };
        match self.store.ingest(Arc::new(batch))? {
            IngestOutcome::Stored(_) => {
                self.counters.alerts.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            IngestOutcome::Duplicate => Ok(()),
        }
    }

    /// The enterprise-wide figures of `enterprise` for the summary: persons of `year` per
    /// category (estimate, error bound, limit, gateways) and bytes per scenario on `day`
    /// (total, cap, per gateway).
    pub fn summary(&self, enterprise: &str, year: i32, day: &str) -> Result<Value, StoreError> {
        summary(&*self.store, enterprise, year, day)
    }
}

/// The enterprise-wide figures of `enterprise` (see [`Sketches::summary`]), straight from the
/// store.
pub fn summary(
    store: &dyn Store,
    enterprise: &str,
    year: i32,
    day: &str,
) -> Result<Value, StoreError> {
    {
        let mut persons = Vec::new();
        for category in ["personal", "sensitive"] {
            let rows = store.sketch_rows(enterprise, &persons_subject(year, category))?;
            if rows.is_empty() {
                continue;
            }
            let (u, gateways) = match rows.iter().find(|r| r.gateway == UNION) {
                Some(r) => (
                    HyperLogLog::decode(&r.data).unwrap_or_default(),
                    rows.iter()
                        .filter(|r| r.gateway != UNION && r.value > 0)
                        .map(|r| r.gateway.clone())
                        .collect(),
                ),
                None => union(&rows),
            };
            let est = u.estimate();
            let limit = rows.iter().filter_map(|r| r.limit).max();
            persons.push(json!({
                "year": year,
                "category": category,
                "estimate": est,
                "error_bound": (est as f64 * 3.0 * HyperLogLog::relative_error()).ceil() as u64,
                "limit": limit,
                "percent_of_limit": limit.filter(|l| *l > 0).map(|l| (est as f64 * 100.0 / l as f64 * 10.0).round() / 10.0),
                "gateways": gateways,
            }));
        }
        let mut volumes = Vec::new();
        let rows = store.sketch_rows(enterprise, &format!("bytes:{day}:"))?;
        let mut scenarios: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.subject.strip_prefix(&format!("bytes:{day}:")))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        scenarios.sort_unstable();
        for sc in scenarios {
            let mine: Vec<&SketchRow> = rows
                .iter()
                .filter(|r| r.subject.strip_prefix(&format!("bytes:{day}:")) == Some(sc))
                .collect();
            let total: u64 = mine.iter().map(|r| r.value).sum();
            let cap = mine.iter().filter_map(|r| r.limit).max();
            let per: serde_json::Map<String, Value> = mine
                .iter()
                .map(|r| (r.gateway.clone(), json!(r.value)))
                .collect();
            volumes.push(json!({
                "scenario": sc,
                "day": day,
                "bytes": total,
                "cap": cap,
                "by_gateway": per,
            }));
        }
        Ok(json!({
            "persons": persons,
            "volumes_today": volumes,
        }))
    }
}

/// Gateway name of the stored union row of a persons subject (not a valid gateway id).
const UNION: &str = "*";

/// Union of the gateways' registers, and the gateways that contributed.
fn union(rows: &[SketchRow]) -> (HyperLogLog, Vec<String>) {
    let mut u = HyperLogLog::new();
    let mut gateways = BTreeSet::new();
    for r in rows.iter().filter(|r| r.gateway != UNION) {
        if let Ok(h) = HyperLogLog::decode(&r.data) {
            if !h.is_empty() {
                gateways.insert(r.gateway.clone());
            }
            u.merge(&h);
        }
    }
    (u, gateways.into_iter().collect())
}

#[allow(clippy::too_many_arguments)]
fn alert(
    kind: AlertKind,
    severity: Severity,
    gateway: &str,
    enterprise: &str,
    scenario: Option<&str>,
    now_ms: i64,
    summary: String,
    gateways: Vec<String>,
) -> Event {
    // An event like the agents' (stored and hashed in EVE's layout): EVE's time format.
    let mut e = Event::new(
        EventType::Alert,
        format_eve_timestamp(now_ms.saturating_mul(1000)),
        gateway.to_string(),
    );
    e.alert = Some(Alert {
        kind,
        severity,
        scenario: scenario.map(str::to_string),
        enterprise: Some(enterprise.to_string()),
        summary,
        rule: kind.rule().to_string(),
        recipient: None,
        service: None,
        count: 1,
        bytes: 0,
        evidence: Vec::new(),
        persons: None,
        followup: false,
        green_channel: false,
        days_left: None,
        valid_from: None,
        valid_until: None,
        scope: Some("enterprise".to_string()),
        gateways,
    });
    e
}
