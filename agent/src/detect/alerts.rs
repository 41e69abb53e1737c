//! One function per alert kind: each looks at the facts of a flow record (or a tick) and returns
//! the alert it raises as a boxed [`AlertFinding`], never an event. [`super::Classifier`] calls
//! them in a fixed order and decides which go through the alert shaper.

use super::counters::{PersonsOwner, Surge, SurgeRule, VolumeOutcome};
use super::pi::PiKind;

use super::{lock, Classifier, FlowState, VPN_PROTOCOLS};
use crate::analysis::findings::{
    AlertFacts, AlertFinding, FlowDesc, FlowRef, ScenarioDates, ServiceRef, Tunnel,
};
use crate::analysis::{FlowSummary, Health};
use crate::classify::{transport_of, Classification, NameSource};
use crate::text::Text;
use crossline_config::agent::{expiry_levels, Signature, SignatureKind};
use crossline_config::event::{AlertKind, Direction, Severity, VerdictStatus};
use crossline_config::registry::{DataCategory, Scenario, Service};
use crossline_config::time::{shanghai, Date, SHANGHAI_OFFSET_SECS};
use std::net::IpAddr;
use std::sync::Arc;

/// What the alert detectors of one flow record share.
pub(super) struct Record<'a> {
    pub s: &'a FlowSummary<'a>,
    pub c: &'a Classification,
    /// Time the record is judged at (see the module documentation of [`super`]).
    pub judge: i64,
    /// Export bytes not counted by an earlier record of the flow.
    pub delta_bytes: u64,
    /// The record carries export payload worth alerting on (`detect.min_export_bytes`).
    pub carries: bool,
    pub domestic: IpAddr,
    pub foreign: IpAddr,
    /// The verdict of the flow's early judgement (live) not yet followed by a record, and
    /// whether it raised the verdict alert.
    pub early: Option<(VerdictStatus, bool)>,
}

impl Record<'_> {
    fn flow(&self) -> FlowRef {
        let s = self.s;
        FlowRef {
            flow_id: s.flow_id,
            ip_proto: s.ip_proto,
            initiator: s.initiator,
            initiator_port: s.initiator_port,
            responder: s.responder,
            responder_port: s.responder_port,
            vlan: s.vlan,
            icmp: s.icmp,
            app_proto: s.app_proto,
        }
    }

    fn service(&self) -> ServiceRef {
        ServiceRef {
            ip_proto: self.s.ip_proto,
            port: self.s.responder_port,
        }
    }

    fn desc(&self) -> FlowDesc {
        let (recipient, recipient_is_name) = recipient_of(self.s, self.c);
        FlowDesc {
            import: self.c.direction == Direction::Import,
            domestic: self.domestic,
            foreign: self.foreign,
            recipient,
            recipient_is_name,
            service: self.service(),
            bytes: self.delta_bytes,
        }
    }
}

/// The far end as matched: the matched name, else the best name known (never an ECH outer
/// SNI), else the address. The flag tells whether it is a name. When the foreign end initiated
/// the flow, every name describes the domestic server: the recipient is the foreign address.
///
/// Written on the stack and allocated once, shared by the alert and its summary's facts.
fn recipient_of(s: &FlowSummary<'_>, c: &Classification) -> (Arc<str>, bool) {
    if c.direction == Direction::Import {
        return (address(c.foreign.unwrap_or(s.initiator)), false);
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
        Some(n) => (lower_case(n), true),
        None => (address(c.foreign.unwrap_or(s.responder)), false),
    }
}

/// `ip` as an alert's recipient text, written on the stack and allocated once.
fn address(ip: IpAddr) -> Arc<str> {
    Arc::from(Text::<48>::ip(ip).as_str())
}

/// `name` in ASCII lower case, allocated once (names parsed from the wire are lower-cased
/// already; an HTTP Host may not be).
fn lower_case(name: &str) -> Arc<str> {
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Arc::from(name);
    }
    Arc::from(name.to_ascii_lowercase())
}

fn dates(sc: &Scenario) -> ScenarioDates {
    ScenarioDates {
        id: sc.id.clone(),
        valid_from: sc.valid_from,
        valid_until: sc.valid_until,
    }
}

fn day_of(micros: i64) -> Date {
    shanghai(micros.div_euclid(1_000_000)).date
}

impl Classifier {
    /// An alert of `kind` stamped at `micros`, about `flow` when given; the severity is raised
    /// for green-channel enterprises where configured.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finding(
        &self,
        kind: AlertKind,
        severity: Severity,
        micros: i64,
        flow: Option<FlowRef>,
        scenario: Option<u32>,
        enterprise: Option<u32>,
        facts: AlertFacts,
    ) -> Box<AlertFinding> {
        let reg = &self.compiled.registry;
        let green = self.green(enterprise);
        let severity = if green && self.live.cfg.green_channel_raise {
            severity.raised()
        } else {
            severity
        };
        // Boxed where it is made: a finding is 424 bytes, and from here it only moves as a
        // pointer (through the shaper, the record's list and the writer's queue).
        Box::new(AlertFinding {
            kind,
            severity,
            green_channel: green,
            scenario: scenario.map(|s| reg.scenarios[s as usize].id.clone()),
            enterprise: enterprise.map(|i| reg.enterprises[i as usize].id.clone()),
            micros,
            flow,
            recipient: None,
            service: None,
            bytes: 0,
            count: 1,
            followup: false,
            evidence: Vec::new(),
            persons: None,
            days_left: None,
            validity: None,
            facts,
            judged: None,
        })
    }

    /// An alert about the flow of `r`, with its recipient, service and `bytes`.
    fn flow_finding(
        &self,
        r: &Record<'_>,
        kind: AlertKind,
        severity: Severity,
        scenario: Option<u32>,
        bytes: u64,
        facts: AlertFacts,
    ) -> Box<AlertFinding> {
        // The facts' sentence names the same recipient: shared, not made again.
        let recipient = match facts.flow() {
            Some(f) => Arc::clone(&f.recipient),
            None => recipient_of(r.s, r.c).0,
        };
        let mut a = self.finding(
            kind,
            severity,
            r.s.last_micros,
            Some(r.flow()),
            scenario,
            r.c.enterprise,
            facts,
        );
        a.recipient = Some(recipient);
        a.service = Some(r.service());
        a.bytes = bytes;
        a
    }

    /// The verdict's own alert (`unfiled_export`, `recipient_not_filed`, `service_not_filed`,
    /// `filing_expired`, `outside_window`, `filing_not_yet_valid`).
    pub(super) fn verdict_alert(&self, r: &Record<'_>) -> Option<Box<AlertFinding>> {
        let kind = r.c.status.alert_kind()?;
        if !r.carries {
            return None;
        }
        let sc = r.c.scenario.map(|i| self.compiled.scenario(i));
        let scen_id = || sc.map(|sc| sc.id.clone()).unwrap_or_default();
        let judged = shanghai(r.judge.div_euclid(1_000_000));
        let day = judged.date.days_since_epoch();
        let flow = r.desc();
        let facts = match r.c.status {
            VerdictStatus::Unfiled => AlertFacts::Unfiled { flow },
            VerdictStatus::RecipientNotFiled => AlertFacts::RecipientNotFiled {
                flow,
                scenario: scen_id(),
                ech: r.c.ech,
            },
            VerdictStatus::ServiceNotFiled => AlertFacts::ServiceNotFiled {
                flow,
                scenario: scen_id(),
            },
            VerdictStatus::FilingExpired => AlertFacts::FilingExpired {
                flow,
                scenario: sc.map(|sc| (dates(sc), day - sc.valid_until.days_since_epoch())),
            },
            VerdictStatus::OutsideWindow => AlertFacts::OutsideWindow {
                flow,
                scenario: scen_id(),
                second_of_day: judged.second_of_day,
            },
            VerdictStatus::FilingNotYetValid => AlertFacts::FilingNotYetValid {
                flow,
                scenario: sc.map(|sc| (dates(sc), sc.valid_from.days_since_epoch() - day)),
            },
            VerdictStatus::Filed | VerdictStatus::NotCrossBorder | VerdictStatus::Excluded => {
                return None
            }
        };
        let mut a = self.flow_finding(
            r,
            kind,
            kind.default_severity(),
            r.c.scenario,
            r.delta_bytes,
            facts,
        );
        if let Some(sc) = sc {
            if matches!(
                r.c.status,
                VerdictStatus::FilingExpired | VerdictStatus::FilingNotYetValid
            ) {
                a.validity = Some((sc.valid_from, sc.valid_until));
            }
            if r.c.status == VerdictStatus::FilingNotYetValid {
                a.days_left = Some(sc.valid_from.days_since_epoch() - day);
            }
        }
        Some(a)
    }

    /// Count the filed bytes of the record against scenario `si`'s daily cap and hourly surge
    /// baseline.
    pub(super) fn count_volume(&self, r: &Record<'_>, si: u32) -> VolumeOutcome {
        let sc = self.compiled.scenario(si);
        let ent = &self.compiled.registry.enterprises[sc.enterprise_index].id;
        let now = r.s.last_micros;
        let hour = (now.div_euclid(1_000_000) + SHANGHAI_OFFSET_SECS).div_euclid(3600);
        let rule = SurgeRule {
            k: self.live.cfg.surge_k,
            floor_bytes: self.live.cfg.surge_floor_bytes,
        };
        lock(&self.shared.volume).add(
            &sc.id,
            ent,
            sc.bytes_per_day,
            day_of(now),
            hour,
            r.delta_bytes,
            rule,
        )
    }

    /// `volume_cap_exceeded`, once per level per day.
    pub(super) fn cap_alert(
        &self,
        r: &Record<'_>,
        si: u32,
        o: &VolumeOutcome,
    ) -> Option<Box<AlertFinding>> {
        if o.cap_level == 0 {
            return None;
        }
        let sc = self.compiled.scenario(si);
        let twice = o.cap_level >= 2;
        let facts = AlertFacts::VolumeCap {
            scenario: sc.id.clone(),
            day_bytes: o.day_bytes,
            day: day_of(r.s.last_micros),
            cap: sc.bytes_per_day.unwrap_or(0),
            twice,
        };
        let sev = if twice { Severity::High } else { Severity::Med };
        Some(self.flow_finding(
            r,
            AlertKind::VolumeCapExceeded,
            sev,
            Some(si),
            o.day_bytes,
            facts,
        ))
    }

    /// `volume_surge`: about this flow only when this record completed the surge.
    pub(super) fn surge_alert(&self, r: &Record<'_>, si: u32, sg: &Surge) -> Box<AlertFinding> {
        let sc = self.compiled.scenario(si);
        let hl = shanghai(sg.hour * 3600 - SHANGHAI_OFFSET_SECS);
        let facts = AlertFacts::VolumeSurge {
            scenario: sc.id.clone(),
            hour_bytes: sg.hour_bytes,
            day: hl.date,
            hour: hl.second_of_day / 3600,
            baseline: sg.baseline_mean,
            threshold: sg.threshold,
            samples: u64::from(sg.samples),
        };
        let kind = AlertKind::VolumeSurge;
        let mut a = self.flow_finding(
            r,
            kind,
            kind.default_severity(),
            Some(si),
            sg.hour_bytes,
            facts,
        );
        if !sg.this_record {
            // A surge completed by a late record of an earlier hour is not about this flow.
            a.flow = None;
            a.recipient = None;
            a.service = None;
        }
        a
    }

    /// `country_mismatch`: the recipient address is not in the filed recipient's country.
    pub(super) fn country_alert(&self, r: &Record<'_>, si: u32) -> Option<Box<AlertFinding>> {
        let cc = self.shared.geoip.as_ref()?.country(r.foreign)?;
        let sc = self.compiled.scenario(si);
        if sc.recipient.country.as_bytes().eq_ignore_ascii_case(&cc) {
            return None;
        }
        let facts = AlertFacts::CountryMismatch {
            flow: r.desc(),
            got: String::from_utf8_lossy(&cc).into_owned(),
            scenario: sc.id.clone(),
            recipient: sc.recipient.name.clone(),
            country: sc.recipient.country.clone(),
        };
        let kind = AlertKind::CountryMismatch;
        Some(self.flow_finding(
            r,
            kind,
            kind.default_severity(),
            Some(si),
            r.delta_bytes,
            facts,
        ))
    }

    /// `personal_info_cleartext`, with the masked evidence; resets the counts.
    pub(super) fn pi_alert(
        &self,
        r: &Record<'_>,
        state: &mut FlowState,
    ) -> Option<Box<AlertFinding>> {
        if state.pi_counts.iter().all(|&n| n == 0) {
            return None;
        }
        let filed_pi =
            r.c.status == VerdictStatus::Filed
                && r.c.scenario.is_some_and(|i| {
                    self.compiled.scenario(i).data.iter().any(|d| {
                        matches!(d, DataCategory::Personal | DataCategory::SensitivePersonal)
                    })
                });
        let sev = if filed_pi {
            Severity::Med
        } else {
            Severity::High
        };
        let kinds = PiKind::ALL
            .iter()
            .filter(|k| state.pi_counts[k.index()] > 0)
            .map(|k| k.counted(u64::from(state.pi_counts[k.index()])))
            .collect();
        let facts = AlertFacts::PersonalInfo {
            flow: r.desc(),
            kinds,
        };
        let mut a = self.flow_finding(
            r,
            AlertKind::PersonalInfoCleartext,
            sev,
            r.c.scenario,
            r.delta_bytes,
            facts,
        );
        a.evidence = state.take_evidence();
        state.pi_counts = [0; 4];
        Some(a)
    }

    /// `negative_list_category` or `important_data_marker` for each content signature seen.
    pub(super) fn signature_alerts(
        &self,
        r: &Record<'_>,
        state: &mut FlowState,
        out: &mut Vec<Box<AlertFinding>>,
    ) {
        let hits = std::mem::take(&mut state.sig_hits);
        for i in 0..super::signatures::MAX_SIGNATURES {
            if hits & (1 << i) != 0 {
                if let Some(sig) = self.live.signatures.get(i) {
                    out.extend(self.signature_alert(r, sig));
                }
            }
        }
    }

    fn signature_alert(&self, r: &Record<'_>, sig: &Signature) -> Option<Box<AlertFinding>> {
        let (category, signature) = (sig.category.clone(), sig.id.clone());
        let (kind, facts) = match sig.kind {
            SignatureKind::NegativeList => {
                let approved = r.c.status == VerdictStatus::Filed
                    && r.c.scenario.is_some_and(|i| {
                        let id = &self.compiled.scenario(i).id;
                        sig.approved_scenarios.iter().any(|a| a == id)
                    });
                if approved {
                    return None;
                }
                let flow = r.desc();
                let facts = AlertFacts::NegativeList {
                    flow,
                    category,
                    signature,
                };
                (AlertKind::NegativeListCategory, facts)
            }
            SignatureKind::ImportantData => {
                let flow = r.desc();
                let facts = AlertFacts::ImportantData {
                    flow,
                    category,
                    signature,
                };
                (AlertKind::ImportantDataMarker, facts)
            }
        };
        Some(self.flow_finding(
            r,
            kind,
            kind.default_severity(),
            r.c.scenario,
            r.delta_bytes,
            facts,
        ))
    }

    /// `opaque_tunnel` (see the module documentation of [`super`] for the heuristic).
    pub(super) fn tunnel_alert(
        &self,
        r: &Record<'_>,
        state: &FlowState,
    ) -> Option<Box<AlertFinding>> {
        let (s, c) = (r.s, r.c);
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
                let sc = self.compiled.scenario(i);
                !sc.services.is_empty()
                    && sc.services.iter().any(|sv| {
                        *sv != Service::Any
                            && transport_of(s.ip_proto)
                                .is_some_and(|t| sv.matches(t, s.responder_port))
                    })
            });
        if !(vpn || (unnamed && random)) || explicitly_filed {
            return None;
        }
        let tunnel = match s.app_proto {
            Some(p) if vpn => Tunnel::Protocol(p),
            _ if vpn => Tunnel::Ipsec,
            _ => Tunnel::Entropy(state.distinct_pct),
        };
        let facts = AlertFacts::OpaqueTunnel {
            flow: r.desc(),
            tunnel,
        };
        let kind = AlertKind::OpaqueTunnel;
        Some(self.flow_finding(
            r,
            kind,
            kind.default_severity(),
            c.scenario,
            r.delta_bytes,
            facts,
        ))
    }

    /// `line_misuse`: many foreign sources reaching one domestic service that answered them
    /// (unanswered probes and scans do not count).
    pub(super) fn misuse_alert(&self, r: &Record<'_>) -> Option<Box<AlertFinding>> {
        let s = r.s;
        if r.c.direction != Direction::Import || s.pkts_rev == 0 {
            return None;
        }
        let hour = (s.first_micros.div_euclid(1_000_000) + SHANGHAI_OFFSET_SECS).div_euclid(3600);
        let n = lock(&self.shared.misuse).add(
            (r.domestic, s.ip_proto, s.responder_port),
            r.foreign,
            hour,
            self.live.cfg.misuse_sources,
        )?;
        let facts = AlertFacts::LineMisuse {
            sources: n as u64,
            domestic: r.domestic,
            service: r.service(),
        };
        let kind = AlertKind::LineMisuse;
        let mut a = self.flow_finding(
            r,
            kind,
            kind.default_severity(),
            r.c.scenario,
            r.delta_bytes,
            facts,
        );
        a.recipient = Some(address(r.domestic));
        Some(a)
    }

    /// `filing_expiring`, checked when the Beijing day changes: once per filing (and last
    /// valid day, so a renewed filing warns again) per level reached, across workers. Days
    /// left are working days (CAC Order 16 art. 9), calendar days where no holiday schedule is
    /// known (see `DetectShared::days_left`).
    pub(super) fn expiry_alerts(&mut self, now: i64, out: &mut Vec<Box<AlertFinding>>) {
        let today = day_of(now);
        if self.expiry_day == Some(today) {
            return;
        }
        self.expiry_day = Some(today);
        let levels = expiry_levels(self.live.cfg.expiry_warning_days);
        let first = i64::from(levels[0]);
        let compiled = Arc::clone(&self.compiled);
        for (i, sc) in compiled.registry.scenarios.iter().enumerate() {
            let calendar_left = sc.valid_until.days_since_epoch() - today.days_since_epoch();
            // Working days are never more than calendar days, and N working days never span
            // more than 2N + 30 calendar days (weekends plus the longest holidays).
            if sc.valid_from > today || calendar_left < 0 || calendar_left > 2 * first + 30 {
                continue;
            }
            out.extend(self.expiry_alert(now, today, &levels, i, sc));
        }
    }

    fn expiry_alert(
        &self,
        now: i64,
        today: Date,
        levels: &[u32],
        i: usize,
        sc: &Scenario,
    ) -> Option<Box<AlertFinding>> {
        let (left, working) = self.shared.days_left(today, sc.valid_until);
        let level = *levels.iter().rev().find(|l| left <= i64::from(**l))?;
        if !lock(&self.shared.expiry).first(&sc.id, sc.valid_until, level) {
            return None;
        }
        let no_schedule = (!working).then(|| {
            let cal = &self.shared.calendar;
            (today.year..=sc.valid_until.year)
                .find(|y| !cal.covers(*y))
                .unwrap_or(sc.valid_until.year)
        });
        let reg = &self.compiled.registry;
        let facts = AlertFacts::FilingExpiring {
            scenario: dates(sc),
            filing_ref: sc.filing_ref.clone(),
            enterprise: reg.enterprises[sc.enterprise_index].name.clone(),
            recipient: sc.recipient.name.clone(),
            left,
            working,
            level,
            no_schedule,
        };
        let kind = AlertKind::FilingExpiring;
        let ent = sc.enterprise_index as u32;
        let mut a = self.finding(
            kind,
            kind.default_severity(),
            now,
            None,
            Some(i as u32),
            Some(ent),
            facts,
        );
        a.days_left = Some(left.max(0));
        a.validity = Some((sc.valid_from, sc.valid_until));
        Some(a)
    }

    /// `persons_threshold` (one worker reports each crossing: the book remembers it).
    pub(super) fn persons_alerts(&self, now: i64, out: &mut Vec<Box<AlertFinding>>) {
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
            let facts = AlertFacts::PersonsThreshold {
                who,
                sensitive: x.sensitive,
                estimate: x.estimate,
                year: x.year,
                percent: x.percent,
                limit: x.limit,
            };
            let kind = AlertKind::PersonsThreshold;
            let mut a = self.finding(
                kind,
                kind.default_severity(),
                now,
                None,
                None,
                ent_index,
                facts,
            );
            a.persons = Some(x.estimate);
            out.push(a);
        }
    }

    /// `sensor_gap` (worker 0 only: health figures are line totals).
    pub(super) fn sensor_gap_alert(&mut self, now: i64, h: &Health) -> Option<Box<AlertFinding>> {
        if self.worker != 0 {
            return None;
        }
        let l = self.last_health;
        self.last_health = *h;
        let facts = AlertFacts::SensorGap {
            kernel: h.drops_kernel.saturating_sub(l.drops_kernel),
            interface: h.drops_interface.saturating_sub(l.drops_interface),
            queue: h.drops_queue.saturating_sub(l.drops_queue),
            evictions: h.evictions.saturating_sub(l.evictions),
            loss: h.capture_loss.saturating_sub(l.capture_loss),
        };
        let AlertFacts::SensorGap {
            kernel,
            interface,
            queue,
            evictions,
            loss,
        } = facts
        else {
            return None;
        };
        let count = kernel + interface + queue + evictions + loss;
        if count == 0 {
            return None;
        }
        let kind = AlertKind::SensorGap;
        let mut a = self.finding(kind, kind.default_severity(), now, None, None, None, facts);
        a.count = count;
        Some(a)
    }
}
