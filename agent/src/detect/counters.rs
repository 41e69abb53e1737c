//! Counters shared by all workers: daily bytes and hourly baselines per scenario (caps and
//! surges), distinct persons per enterprise and year, foreign sources per domestic service (line
//! misuse), and expiry warnings sent (once per filing per level).
//!
//! Each book sits behind its own mutex and is touched once per flow record (or once per personal
//! identifier found), never per packet. Scenario counters are keyed by scenario id so they
//! survive a registry reload.

use super::hll::HyperLogLog;
use crossline_config::time::Date;
use foldhash::{HashMap, HashSet};
use std::net::IpAddr;

/// Hours of baseline kept: four weeks.
pub const BASELINE_HOURS: i64 = 4 * 7 * 24;

/// What happened to a scenario's counters when bytes were added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VolumeOutcome {
    /// The day's cap was passed by this record (1 = cap, 2 = twice the cap).
    pub cap_level: u8,
    /// Bytes of the scenario on that Beijing day so far.
    pub day_bytes: u64,
    /// A surge was detected for the current hour (first time this hour).
    pub surge: Option<Surge>,
}

/// Figures of a volume surge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Surge {
    /// Beijing hour index (hours since the epoch, local time) that surged.
    pub hour: i64,
    /// The surge is in the hour of the record just added (else a later hour, completed by it).
    pub this_record: bool,
    /// Bytes in the surging hour.
    pub hour_bytes: u64,
    /// Mean of the baseline samples.
    pub baseline_mean: u64,
    /// Mean + k·σ.
    pub threshold: u64,
    /// Baseline samples (same hour of earlier weeks with traffic).
    pub samples: u32,
}

/// Bytes of one Beijing day.
#[derive(Debug, Clone, Copy)]
struct DayCount {
    day: Date,
    bytes: u64,
    /// Cap level already alerted: 0, 1 (cap), 2 (twice the cap).
    level: u8,
}

/// Days kept per scenario, so that a record of yesterday written late by another worker still
/// counts towards its own day.
const DAYS_KEPT: usize = 3;

#[derive(Debug, Default)]
struct ScenarioVolume {
    enterprise: String,
    days: [Option<DayCount>; DAYS_KEPT],
    cap: Option<u64>,
    /// Hours with traffic within the baseline window, by Beijing hour index (hours since the
    /// epoch, local time): bytes, and whether a surge was already reported for that hour.
    /// Records of several workers may arrive slightly out of order, so any kept hour can grow.
    hours: Vec<(i64, u64, bool)>,
}

impl ScenarioVolume {
    /// The counter of `day`, creating it (over the oldest) when it is newer than one kept.
    fn day_mut(&mut self, day: Date) -> Option<&mut DayCount> {
        if let Some(i) = self
            .days
            .iter()
            .position(|d| d.is_some_and(|d| d.day == day))
        {
            return self.days[i].as_mut();
        }
        let slot = match self.days.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                let (i, oldest) = self
                    .days
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| d.map(|d| (i, d.day)))
                    .min_by_key(|(_, d)| *d)?;
                if oldest > day {
                    return None;
                }
                i
            }
        };
        self.days[slot] = Some(DayCount {
            day,
            bytes: 0,
            level: 0,
        });
        self.days[slot].as_mut()
    }

    fn bytes_on(&self, day: Date) -> Option<u64> {
        self.days
            .iter()
            .flatten()
            .find(|d| d.day == day)
            .map(|d| d.bytes)
    }

    fn latest_day(&self) -> Option<Date> {
        self.days.iter().flatten().map(|d| d.day).max()
    }
}

/// Daily bytes and hourly history per scenario.
#[derive(Debug, Default)]
pub struct VolumeBook {
    scenarios: HashMap<String, ScenarioVolume>,
}

/// Surge rule parameters.
#[derive(Debug, Clone, Copy)]
pub struct SurgeRule {
    /// k in mean + k·σ.
    pub k: f64,
    /// Hours below this many bytes never surge.
    pub floor_bytes: u64,
}

impl VolumeBook {
    /// Add `bytes` exported under `scenario` at Beijing `day` / `hour` (local hour index).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        scenario: &str,
        enterprise: &str,
        cap: Option<u64>,
        day: Date,
        hour: i64,
        bytes: u64,
        rule: SurgeRule,
    ) -> VolumeOutcome {
        let v = match self.scenarios.get_mut(scenario) {
            Some(v) => v,
            None => self.scenarios.entry(scenario.to_string()).or_default(),
        };
        if v.enterprise != enterprise {
            v.enterprise = enterprise.to_string();
        }
        v.cap = cap;
        let mut out = VolumeOutcome::default();
        // Daily cap (restarts at Beijing midnight).
        if let Some(d) = v.day_mut(day) {
            d.bytes += bytes;
            if let Some(cap) = cap {
                let level = if d.bytes > cap.saturating_mul(2) {
                    2
                } else if d.bytes > cap {
                    1
                } else {
                    0
                };
                if level > d.level {
                    d.level = level;
                    out.cap_level = level;
                }
            }
            out.day_bytes = d.bytes;
        }
        // Hourly volume for surges.
        let newest = v.hours.iter().map(|h| h.0).max().unwrap_or(hour);
        if hour + BASELINE_HOURS < newest {
            return out;
        }
        let i = match v.hours.iter().position(|h| h.0 == hour) {
            Some(i) => i,
            None => {
                v.hours.push((hour, 0, false));
                let newest = newest.max(hour);
                v.hours.retain(|h| h.0 + BASELINE_HOURS >= newest);
                v.hours.len() - 1
            }
        };
        v.hours[i].1 += bytes;
        // Check this hour, and the same hour of the next weeks (a late record of an earlier
        // hour, from another worker, can complete their baseline).
        for k in 0..=4 {
            let h = hour + k * 168;
            let Some(j) = v.hours.iter().position(|x| x.0 == h) else {
                continue;
            };
            let (_, hour_bytes, alerted) = v.hours[j];
            if alerted {
                continue;
            }
            if let Some(mut sg) = surge_check(&v.hours, h, hour_bytes, rule) {
                v.hours[j].2 = true;
                sg.hour = h;
                sg.this_record = k == 0;
                out.surge = Some(sg);
                break;
            }
        }
        out
    }

    /// Bytes per scenario on Beijing day `day`: (scenario, enterprise, bytes, cap).
    pub fn usage(&self, day: Date) -> Vec<(String, String, u64, Option<u64>)> {
        let mut v: Vec<_> = self
            .scenarios
            .iter()
            .filter_map(|(id, s)| {
                s.bytes_on(day)
                    .map(|b| (id.clone(), s.enterprise.clone(), b, s.cap))
            })
            .collect();
        v.sort();
        v
    }

    /// The latest day any scenario counted bytes on.
    pub fn latest_day(&self) -> Option<Date> {
        self.scenarios
            .values()
            .filter_map(ScenarioVolume::latest_day)
            .max()
    }
}

/// Same hour of the week in the last four weeks: mean + k·σ, above the floor, at least two
/// samples (hours of those weeks with no traffic at all are not samples).
fn surge_check(
    hours: &[(i64, u64, bool)],
    hour: i64,
    bytes: u64,
    rule: SurgeRule,
) -> Option<Surge> {
    if bytes <= rule.floor_bytes {
        return None;
    }
    let mut n = 0u32;
    let mut sum = 0f64;
    let mut sq = 0f64;
    for &(h, b, _) in hours {
        let age = hour - h;
        if age > 0 && age <= BASELINE_HOURS && age % 168 == 0 {
            n += 1;
            let b = b as f64;
            sum += b;
            sq += b * b;
        }
    }
    if n < 2 {
        return None;
    }
    let mean = sum / f64::from(n);
    let var = (sq / f64::from(n) - mean * mean).max(0.0);
    let threshold = mean + rule.k * var.sqrt();
    if (bytes as f64) > threshold {
        Some(Surge {
            hour,
            this_record: true,
            hour_bytes: bytes,
            baseline_mean: mean.round() as u64,
            threshold: threshold.round() as u64,
            samples: n,
        })
    } else {
        None
    }
}

/// Who a person count belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PersonsOwner {
    /// An enterprise, by USCC.
    Enterprise {
        /// Unified social credit code (the counting key).
        uscc: String,
        /// Enterprise id (for reports).
        id: String,
    },
    /// A domestic source that no scenario lists.
    Unknown(IpAddr),
}

/// Borrowed form of [`PersonsOwner`], so counting an identifier allocates nothing once the
/// owner's bucket exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerRef<'a> {
    /// An enterprise: its USCC (the counting key) and id (for reports).
    Enterprise {
        /// Unified social credit code (the counting key).
        uscc: &'a str,
        /// Enterprise id (for reports).
        id: &'a str,
    },
    /// A domestic source that no scenario lists.
    Unknown(IpAddr),
}

/// Limits that apply to an owner's yearly person counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonsLimits {
    /// All personal information.
    pub all: u64,
    /// Sensitive personal information (bank cards).
    pub sensitive: u64,
}

#[derive(Debug)]
struct PersonsBucket {
    id: String,
    year: i32,
    all: HyperLogLog,
    /// Allocated on the first sensitive identifier (16 KiB).
    sensitive: Option<HyperLogLog>,
    limits: PersonsLimits,
    /// Highest level alerted: 0, 80, 100 (all) and (sensitive).
    alerted: (u8, u8),
    dirty: bool,
}

/// A persons-threshold crossing to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonsCrossing {
    /// Whose count crossed.
    pub owner: PersonsOwner,
    /// Beijing calendar year.
    pub year: i32,
    /// The sensitive (bank card) count, not the overall one.
    pub sensitive: bool,
    /// 80 or 100.
    pub percent: u8,
    /// Estimated distinct persons.
    pub estimate: u64,
    /// The limit the percentage is of.
    pub limit: u64,
}

/// Most unknown-source buckets kept (16 KiB each); beyond, new unknown sources share one bucket.
pub const MAX_UNKNOWN_BUCKETS: usize = 1024;

/// Distinct persons per owner and Beijing year.
#[derive(Debug, Default)]
pub struct PersonsBook {
    enterprises: HashMap<String, PersonsBucket>,
    unknown: HashMap<IpAddr, PersonsBucket>,
}

impl PersonsBook {
    /// Count one hashed identifier.
    pub fn add(
        &mut self,
        owner: OwnerRef<'_>,
        year: i32,
        hash: u64,
        sensitive: bool,
        limits: PersonsLimits,
    ) {
        let fresh = |id: &str| PersonsBucket {
            id: id.to_string(),
            year,
            all: HyperLogLog::new(),
            sensitive: None,
            limits,
            alerted: (0, 0),
            dirty: false,
        };
        let b = match owner {
            OwnerRef::Enterprise { uscc, id } => match self.enterprises.get_mut(uscc) {
                Some(b) => b,
                None => self
                    .enterprises
                    .entry(uscc.to_string())
                    .or_insert_with(|| fresh(id)),
            },
            OwnerRef::Unknown(ip) => {
                let ip = if self.unknown.len() >= MAX_UNKNOWN_BUCKETS
                    && !self.unknown.contains_key(&ip)
                {
                    IpAddr::from([0u8, 0, 0, 0])
                } else {
                    ip
                };
                self.unknown
                    .entry(ip)
                    .or_insert_with(|| fresh(&format!("unknown:{ip}")))
            }
        };
        if b.year != year {
            if year < b.year {
                return;
            }
            *b = fresh(&b.id.clone());
        }
        b.limits = limits;
        b.all.insert(hash);
        if sensitive {
            b.sensitive
                .get_or_insert_with(HyperLogLog::new)
                .insert(hash);
        }
        b.dirty = true;
    }

    /// New 80% / 100% crossings since the last call.
    pub fn crossings(&mut self) -> Vec<PersonsCrossing> {
        let mut out = Vec::new();
        let owners = self
            .enterprises
            .iter_mut()
            .map(|(uscc, b)| {
                (
                    PersonsOwner::Enterprise {
                        uscc: uscc.clone(),
                        id: b.id.clone(),
                    },
                    b,
                )
            })
            .chain(
                self.unknown
                    .iter_mut()
                    .map(|(ip, b)| (PersonsOwner::Unknown(*ip), b)),
            );
        for (owner, b) in owners {
            if !b.dirty {
                continue;
            }
            b.dirty = false;
            for sensitive in [false, true] {
                let (est, limit, level) = if sensitive {
                    let est = b.sensitive.as_ref().map_or(0, HyperLogLog::estimate);
                    (est, b.limits.sensitive, &mut b.alerted.1)
                } else {
                    (b.all.estimate(), b.limits.all, &mut b.alerted.0)
                };
                if limit == 0 || limit == u64::MAX {
                    continue;
                }
                let pct = if est >= limit {
                    100
                } else if est * 10 >= limit * 8 {
                    80
                } else {
                    0
                };
                if pct > *level {
                    *level = pct;
                    out.push(PersonsCrossing {
                        owner: owner.clone(),
                        year: b.year,
                        sensitive,
                        percent: pct,
                        estimate: est,
                        limit,
                    });
                }
            }
        }
        out
    }

    /// (owner id, year, estimate, limit) of every enterprise bucket.
    pub fn usage(&self) -> Vec<(String, i32, u64, u64)> {
        let mut v: Vec<_> = self
            .enterprises
            .values()
            .chain(self.unknown.values())
            .map(|b| (b.id.clone(), b.year, b.all.estimate(), b.limits.all))
            .collect();
        v.sort();
        v
    }
}

/// Distinct foreign sources per domestic service per hour.
#[derive(Debug, Default)]
pub struct MisuseBook {
    hour: i64,
    services: HashMap<(IpAddr, u8, u16), (Vec<IpAddr>, bool)>,
}

/// Most services tracked per hour.
pub const MAX_MISUSE_SERVICES: usize = 65_536;

impl MisuseBook {
    /// Note that `foreign` reached `service`; returns the number of distinct sources when this
    /// record makes it reach `threshold` for the first time this hour.
    pub fn add(
        &mut self,
        service: (IpAddr, u8, u16),
        foreign: IpAddr,
        hour: i64,
        threshold: u32,
    ) -> Option<usize> {
        if hour > self.hour {
            self.hour = hour;
            self.services.clear();
        } else if hour < self.hour {
            return None;
        }
        if !self.services.contains_key(&service) && self.services.len() >= MAX_MISUSE_SERVICES {
            return None;
        }
        let (set, alerted) = self.services.entry(service).or_default();
        if *alerted {
            return None;
        }
        if !set.contains(&foreign) {
            set.push(foreign);
        }
        if threshold > 0 && set.len() >= threshold as usize {
            *alerted = true;
            let n = set.len();
            set.clear();
            return Some(n);
        }
        None
    }
}

/// Expiry warnings already sent: (scenario id, last valid day, level in working days). Bounded
/// by the registry: at most one entry per scenario, validity and level.
#[derive(Debug, Default)]
pub struct ExpiryBook {
    sent: HashSet<(String, Date, u32)>,
}

impl ExpiryBook {
    /// True the first time for this scenario, last valid day and level.
    pub fn first(&mut self, scenario: &str, valid_until: Date, level: u32) -> bool {
        self.sent.insert((scenario.to_string(), valid_until, level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u8) -> Date {
        Date::new(2026, 3, day).expect("date")
    }

    #[test]
    fn caps_restart_at_midnight() {
        let mut b = VolumeBook::default();
        let r = SurgeRule {
            k: 3.0,
            floor_bytes: u64::MAX,
        };
        assert_eq!(b.add("s", "e", Some(100), d(2), 0, 60, r).cap_level, 0);
        assert_eq!(b.add("s", "e", Some(100), d(2), 0, 60, r).cap_level, 1);
        assert_eq!(b.add("s", "e", Some(100), d(2), 0, 10, r).cap_level, 0);
        assert_eq!(b.add("s", "e", Some(100), d(2), 0, 80, r).cap_level, 2);
        assert_eq!(b.add("s", "e", Some(100), d(2), 0, 80, r).cap_level, 0);
        // Next day starts from zero.
        let o = b.add("s", "e", Some(100), d(3), 24, 90, r);
        assert_eq!((o.cap_level, o.day_bytes), (0, 90));
        assert_eq!(b.add("s", "e", Some(100), d(3), 24, 20, r).cap_level, 1);
        // A late record of the previous day still counts towards that day.
        assert_eq!(b.add("s", "e", Some(100), d(2), 0, 1, r).day_bytes, 291);
        assert_eq!(b.usage(d(3))[0].2, 110);
        assert_eq!(b.latest_day(), Some(d(3)));
    }

    #[test]
    fn surge_needs_two_samples_and_floor() {
        let r = SurgeRule {
            k: 3.0,
            floor_bytes: 1000,
        };
        let mut b = VolumeBook::default();
        let h0 = 1000 * 168;
        // A quiet scenario waking up: no baseline, no surge.
        assert!(b
            .add("s", "e", None, d(2), h0, 1_000_000, r)
            .surge
            .is_none());
        assert!(b
            .add("s", "e", None, d(2), h0 + 168, 2_000, r)
            .surge
            .is_none());
        // Two samples (1,000,000 and 2,000): mean 501,000, σ 499,000 -> threshold 1,998,000.
        assert!(b
            .add("s", "e", None, d(2), h0 + 336, 1_900_000, r)
            .surge
            .is_none());
        let mut b = VolumeBook::default();
        for w in 0..3 {
            b.add("s", "e", None, d(2), h0 + w * 168, 10_000, r);
        }
        let s = b.add("s", "e", None, d(2), h0 + 3 * 168, 50_000, r).surge;
        assert_eq!(s.map(|s| s.samples), Some(3));
        // Out of order: the surge hour first, its baseline later.
        let mut b = VolumeBook::default();
        assert!(b
            .add("s", "e", None, d(2), h0 + 3 * 168, 50_000, r)
            .surge
            .is_none());
        assert!(b.add("s", "e", None, d(2), h0, 10_000, r).surge.is_none());
        let s = b
            .add("s", "e", None, d(2), h0 + 168, 10_000, r)
            .surge
            .expect("surge");
        assert_eq!((s.hour, s.this_record, s.samples), (h0 + 3 * 168, false, 2));
        // Below the floor never surges.
        let r2 = SurgeRule {
            k: 3.0,
            floor_bytes: 100_000,
        };
        let mut b = VolumeBook::default();
        for w in 0..3 {
            b.add("s", "e", None, d(2), h0 + w * 168, 10, r2);
        }
        assert!(b
            .add("s", "e", None, d(2), h0 + 3 * 168, 50_000, r2)
            .surge
            .is_none());
    }

    #[test]
    fn misuse_threshold_once_per_hour() {
        let mut m = MisuseBook::default();
        let svc: (IpAddr, u8, u16) = ("10.0.0.1".parse().expect("ip"), 6, 443);
        for i in 0..4u8 {
            assert_eq!(m.add(svc, IpAddr::from([1, 1, 1, i]), 5, 5), None);
            assert_eq!(m.add(svc, IpAddr::from([1, 1, 1, i]), 5, 5), None);
        }
        assert_eq!(m.add(svc, IpAddr::from([1, 1, 1, 9]), 5, 5), Some(5));
        assert_eq!(m.add(svc, IpAddr::from([1, 1, 1, 10]), 5, 5), None);
    }
}
