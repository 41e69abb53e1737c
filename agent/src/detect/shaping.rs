//! Alert shaping: the first occurrence of an alert identity is emitted at once; repeats within
//! `detect.fold_interval` are counted and emitted as ONE follow-up alert (`followup: true`,
//! `count`, `bytes`) when the interval ends, at the next tick.
//!
//! The identity is (kind, enterprise or source prefix, recipient, service). Shaping in the
//! classifier is per worker: with N workers the same identity can be emitted up to N times per
//! interval (flows are sharded by their 5-tuple). `analyze` therefore shapes once, at the
//! writer, after the events are in capture-time order ([`identity`] gives the key from the
//! alert itself), so the result does not depend on the number of workers; time is always
//! packet time, never the wall clock.

use crate::analysis::findings::AlertFinding;
use crossline_config::event::Event;
use crossline_config::registry::IpNet;
use foldhash::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// An alert the shaper can fold: the writer folds events, a classifier its findings.
pub trait Foldable {
    /// Bytes the alert covers.
    fn bytes(&self) -> u64;
    /// The follow-up of `count` repeats covering `bytes`, this being the last of them.
    fn into_followup(self, count: u64, bytes: u64) -> Self;
}

impl Foldable for Event {
    fn bytes(&self) -> u64 {
        self.alert.as_ref().map_or(0, |a| a.bytes)
    }

    fn into_followup(mut self, count: u64, bytes: u64) -> Self {
        if let Some(a) = self.alert.as_mut() {
            a.followup = true;
            a.count = count;
            a.bytes = bytes;
            let times = if count == 1 { "time" } else { "times" };
            a.summary = format!("{} (repeated {count} more {times})", a.summary);
            a.evidence.clear();
        }
        self
    }
}

impl<T: Foldable> Foldable for Box<T> {
    fn bytes(&self) -> u64 {
        (**self).bytes()
    }

    fn into_followup(self, count: u64, bytes: u64) -> Self {
        Box::new((*self).into_followup(count, bytes))
    }
}

impl Foldable for AlertFinding {
    fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The summary says "(repeated N more times)" when it is rendered.
    fn into_followup(mut self, count: u64, bytes: u64) -> Self {
        self.followup = true;
        self.count = count;
        self.bytes = bytes;
        self.evidence.clear();
        self
    }
}

#[derive(Debug)]
struct Fold<T> {
    first_micros: i64,
    count: u64,
    bytes: u64,
    last: Option<T>,
}

/// Identities folded at once by default (each holds its identity and the last alert).
pub const MAX_KEYS: usize = 65_536;

/// Per-worker alert folding, bounded in time (`fold_micros`) and in count (`max_keys`): when
/// a new identity would pass the count, the identity whose interval started first is evicted
/// and its follow-up emitted at once (early, so no folded count is lost).
#[derive(Debug)]
pub struct Shaper<T = Event> {
    fold_micros: i64,
    max_keys: usize,
    /// The identities being folded; each key is shared with its place in `order` (one
    /// allocation per identity, none for a repeat).
    entries: HashMap<Arc<str>, Fold<T>>,
    /// The identities by the start of their interval (oldest first, for eviction).
    order: std::collections::BTreeSet<(i64, Arc<str>)>,
    /// Identities evicted because `max_keys` were folded.
    evictions: u64,
    /// Earliest end of an interval being folded (`i64::MAX` when none).
    due: i64,
}

/// The shaping identity of an alert event: kind, enterprise (or the /24 or /64 of the flow's
/// domestic endpoint, per `domestic`; the source when neither is), recipient, service. None
/// for events that are not alerts or are follow-ups.
pub fn identity(e: &Event, domestic: &[IpNet]) -> Option<String> {
    let a = e.alert.as_ref()?;
    if a.followup {
        return None;
    }
    let parse = |s: Option<&str>| s.and_then(|s| s.parse::<IpAddr>().ok());
    let (src, dst) = (parse(e.src_ip.as_deref()), parse(e.dest_ip.as_deref()));
    Some(identity_key(
        a.kind.as_str(),
        who(a.enterprise.as_deref(), src, dst, domestic),
        a.recipient.as_deref().unwrap_or(""),
        a.service.as_deref(),
    ))
}

/// [`identity`] of an alert its worker wrote as a line, from its finding: the same key as the
/// alert's event would give, without reading the line back.
pub fn identity_of(a: &AlertFinding, domestic: &[IpNet]) -> Option<String> {
    let mut key = String::new();
    identity_of_into(a, domestic, &mut key).then_some(key)
}

/// [`identity_of`] written into `key` (emptied first; the writer reuses one buffer for every
/// alert); false, and `key` empty, for a follow-up.
pub fn identity_of_into(a: &AlertFinding, domestic: &[IpNet], key: &mut String) -> bool {
    key.clear();
    if a.followup {
        return false;
    }
    let (src, dst) = a.flow.as_ref().map(|f| (f.initiator, f.responder)).unzip();
    identity_key_into(
        key,
        a.kind.as_str(),
        who(a.enterprise.as_deref(), src, dst, domestic),
        a.recipient.as_deref().unwrap_or(""),
        a.service,
    );
    true
}

/// Who an alert between `src` and `dst` is about: its enterprise, else the domestic end (the
/// source when both or neither are domestic).
fn who<'a>(
    enterprise: Option<&'a str>,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    domestic: &[IpNet],
) -> Who<'a> {
    let is_domestic =
        |ip: Option<IpAddr>| ip.is_some_and(|ip| domestic.iter().any(|n| n.contains(ip)));
    let local = if !is_domestic(src) && is_domestic(dst) {
        dst
    } else {
        src
    };
    match (enterprise, local) {
        (Some(ent), _) => Who::Enterprise(ent),
        (None, Some(ip)) => Who::Prefix(ip),
        (None, None) => Who::Nobody,
    }
}

/// Who an alert identity is about.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    /// The enterprise the flow belongs to.
    Enterprise(&'a str),
    /// No enterprise: the /24 (IPv4) or /64 (IPv6) of this address.
    Prefix(IpAddr),
    /// Neither.
    Nobody,
}

/// A service as an identity key spells it (`tcp/443`): the text an event carries, or a
/// finding's protocol and port.
pub trait ServiceText {
    /// Append the service's text.
    fn push_to(&self, out: &mut String);
}

impl ServiceText for &str {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl ServiceText for crate::analysis::findings::ServiceRef {
    fn push_to(&self, out: &mut String) {
        crate::analysis::findings::ServiceRef::push_to(self, out);
    }
}

/// The identity key `kind|who|recipient|service` (see [`identity`]; no service: empty),
/// built without the formatting machinery (it is built for every alert).
pub fn identity_key(
    kind: &str,
    who: Who<'_>,
    recipient: &str,
    service: Option<impl ServiceText>,
) -> String {
    let mut key = String::with_capacity(kind.len() + recipient.len() + 64);
    identity_key_into(&mut key, kind, who, recipient, service);
    key
}

/// [`identity_key`] appended to `key`.
pub fn identity_key_into(
    key: &mut String,
    kind: &str,
    who: Who<'_>,
    recipient: &str,
    service: Option<impl ServiceText>,
) {
    key.push_str(kind);
    key.push('|');
    match who {
        Who::Enterprise(ent) => key.push_str(ent),
        Who::Prefix(ip) => push_prefix(key, ip),
        Who::Nobody => {}
    }
    key.push('|');
    key.push_str(recipient);
    key.push('|');
    if let Some(service) = service {
        service.push_to(key);
    }
}

/// The /24 (`a.b.c.0/24`) or /64 (`a:b:c:d::/64`) of `ip`.
pub fn push_prefix(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            // The address as text up to its last dot, then the host part as 0.
            let text = crate::text::Text::<16>::ip(IpAddr::V4(a));
            let text = text.as_str();
            out.push_str(
                text.get(..text.rfind('.').map_or(0, |i| i + 1))
                    .unwrap_or(""),
            );
            out.push_str("0/24");
        }
        IpAddr::V6(a) => {
            use std::fmt::Write as _;
            let s = a.segments();
            let _ = write!(out, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]);
        }
    }
}

impl<T: Foldable> Shaper<T> {
    /// A shaper folding repeats within `fold_micros`; 0 disables folding.
    pub fn new(fold_micros: i64) -> Shaper<T> {
        Self::with_max_keys(fold_micros, MAX_KEYS)
    }

    /// A shaper folding at most `max_keys` identities at once (at least 1).
    pub fn with_max_keys(fold_micros: i64, max_keys: usize) -> Shaper<T> {
        Shaper {
            fold_micros,
            max_keys: max_keys.max(1),
            entries: HashMap::default(),
            order: std::collections::BTreeSet::new(),
            evictions: 0,
            due: i64::MAX,
        }
    }

    /// Whether this shaper folds at all (a zero interval passes every alert through).
    pub fn folds(&self) -> bool {
        self.fold_micros > 0
    }

    /// Identities evicted so far because the shaper was full.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn remove(&mut self, key: &str) -> Option<Fold<T>> {
        let (key, f) = self.entries.remove_entry(key)?;
        self.order.remove(&(f.first_micros, key));
        Some(f)
    }

    /// Offer an alert with identity `key` at time `now`: emitted to `out` when it is the first
    /// of its interval, else folded.
    pub fn offer(&mut self, key: &str, alert: T, now: i64, out: &mut Vec<T>) {
        if self.fold_micros <= 0 {
            out.push(alert);
            return;
        }
        match self.entries.get_mut(key) {
            Some(f) if now - f.first_micros < self.fold_micros => {
                f.count += 1;
                f.bytes += alert.bytes();
                f.last = Some(alert);
            }
            _ => {
                // First occurrence (or the previous interval ended without a tick).
                if let Some(old) = self.remove(key) {
                    emit_followup(old, out);
                }
                if self.entries.len() >= self.max_keys {
                    if let Some((_, oldest)) = self.order.pop_first() {
                        if let Some(f) = self.entries.remove(&*oldest) {
                            emit_followup(f, out);
                        }
                        self.evictions += 1;
                    }
                }
                out.push(alert);
                self.due = self.due.min(now.saturating_add(self.fold_micros));
                let key: Arc<str> = Arc::from(key);
                self.order.insert((now, Arc::clone(&key)));
                self.entries.insert(
                    key,
                    Fold {
                        first_micros: now,
                        count: 0,
                        bytes: 0,
                        last: None,
                    },
                );
            }
        }
    }

    /// Emit the follow-ups of intervals that ended by `now`.
    pub fn tick(&mut self, now: i64, out: &mut Vec<T>) {
        if now < self.due && now >= self.due.saturating_sub(self.fold_micros) {
            return;
        }
        let fold = self.fold_micros;
        // In order of their interval's start, then identity (`order`'s order): the same
        // whatever the map's order.
        while let Some(first) = self.order.first() {
            if now - first.0 < fold {
                break;
            }
            if let Some((_, k)) = self.order.pop_first() {
                if let Some(f) = self.entries.remove(&*k) {
                    emit_followup(f, out);
                }
            }
        }
        self.due = self
            .order
            .first()
            .map_or(i64::MAX, |f| f.0.saturating_add(fold));
    }

    /// Emit every pending follow-up (end of capture / shutdown).
    pub fn flush(&mut self, out: &mut Vec<T>) {
        self.order.clear();
        let mut all: Vec<(Arc<str>, Fold<T>)> = self.entries.drain().collect();
        all.sort_by(|a, b| (a.1.first_micros, &a.0).cmp(&(b.1.first_micros, &b.0)));
        for (_, f) in all {
            emit_followup(f, out);
        }
        self.due = i64::MAX;
    }

    /// Identities currently being folded.
    pub fn pending(&self) -> usize {
        self.entries.len()
    }
}

fn emit_followup<T: Foldable>(f: Fold<T>, out: &mut Vec<T>) {
    if f.count == 0 {
        return;
    }
    if let Some(e) = f.last {
        out.push(e.into_followup(f.count, f.bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The identity key spells the source prefix as `a.b.c.0/24` / `a:b:c:d::/64`, and an
    /// absent service as nothing.
    #[test]
    fn identity_keys_spell_prefixes_and_services() {
        let key = |ip: &str, service: Option<&str>| {
            let ip: IpAddr = ip.parse().expect("address");
            identity_key("unfiled_export", Who::Prefix(ip), "example.org", service)
        };
        assert_eq!(
            key("10.1.2.3", Some("tcp/443")),
            "unfiled_export|10.1.2.0/24|example.org|tcp/443"
        );
        assert_eq!(
            key("0.0.0.9", None),
            "unfiled_export|0.0.0.0/24|example.org|"
        );
        assert_eq!(
            key("255.100.99.1", None),
            "unfiled_export|255.100.99.0/24|example.org|"
        );
        assert_eq!(
            key("2001:db8:0:a::1", Some("udp/53")),
            "unfiled_export|2001:db8:0:a::/64|example.org|udp/53"
        );
        assert_eq!(
            identity_key("volume_surge", Who::Enterprise("ent-1"), "", None::<&str>),
            "volume_surge|ent-1||"
        );
    }
    use crossline_config::event::{Alert, AlertKind, EventType, Severity};

    fn ev(bytes: u64) -> Event {
        let mut e = Event::new(EventType::Alert, "t".into(), "gw".into());
        e.alert = Some(Alert {
            kind: AlertKind::UnfiledExport,
            severity: Severity::High,
            scenario: None,
            enterprise: None,
            summary: "s".into(),
            rule: "XB-001".into(),
            recipient: None,
            service: None,
            count: 1,
            bytes,
            evidence: vec![],
            persons: None,
            followup: false,
            green_channel: false,
            days_left: None,
            valid_from: None,
            valid_until: None,
            scope: None,
            gateways: Vec::new(),
        });
        e
    }

    #[test]
    fn folds_repeats_into_one_followup() {
        let mut s: Shaper = Shaper::new(300_000_000);
        let mut out = Vec::new();
        s.offer("k", ev(10), 0, &mut out);
        s.offer("k", ev(20), 1_000_000, &mut out);
        s.offer("k", ev(30), 2_000_000, &mut out);
        s.offer("other", ev(5), 2_000_000, &mut out);
        assert_eq!(out.len(), 2);
        s.tick(299_000_000, &mut out);
        assert_eq!(out.len(), 2);
        s.tick(300_000_000, &mut out);
        assert_eq!(out.len(), 3);
        let a = out[2].alert.as_ref().expect("alert");
        assert!(a.followup);
        assert_eq!((a.count, a.bytes), (2, 50));
        // "other" had no repeats: no follow-up, and a new occurrence is first again.
        s.offer("k", ev(1), 301_000_000, &mut out);
        assert_eq!(out.len(), 4);
        assert!(!out[3].alert.as_ref().expect("alert").followup);
    }

    #[test]
    fn bounded_in_keys_evicting_the_oldest_with_its_followup() {
        let mut s: Shaper = Shaper::with_max_keys(300_000_000, 2);
        let mut out = Vec::new();
        s.offer("a", ev(1), 0, &mut out);
        s.offer("a", ev(2), 1, &mut out);
        s.offer("b", ev(3), 2, &mut out);
        s.offer("c", ev(4), 3, &mut out);
        assert_eq!(s.pending(), 2, "never more identities than the bound");
        assert_eq!(s.evictions(), 1);
        // a, b, then a's follow-up (evicted first: oldest), then c.
        assert_eq!(out.len(), 4);
        let a = out[2].alert.as_ref().expect("alert");
        assert!(a.followup);
        assert_eq!((a.count, a.bytes), (1, 2));
        assert!(!out[3].alert.as_ref().expect("alert").followup);
        // b is still folded; a is first again.
        s.offer("b", ev(5), 4, &mut out);
        s.offer("a", ev(6), 5, &mut out);
        assert_eq!(s.evictions(), 2, "b was the oldest");
        assert_eq!(out.len(), 6, "b's follow-up, then a");
        let b = out[4].alert.as_ref().expect("alert");
        assert!(b.followup);
        assert_eq!((b.count, b.bytes), (1, 5));
        s.flush(&mut out);
        assert_eq!(s.pending(), 0);
    }
}
