//! The detector's cumulative state on disk, and the `sketch` events sent upstream.
//!
//! One file, `detect.state`, in the state directory (`state_dir` of `agent.toml` for `run`,
//! `analyze --state DIR`): a header line `crossline-agent-state <version> sha256:<hex of the
//! body>` and a JSON body holding the HyperLogLog registers of persons per owner and year
//! (personal, sensitive: the directory is created 0700 and the file 0600), the bytes and cap
//! levels per scenario and Beijing day, the hour-of-week surge baselines and the expiry warnings
//! already given. It is written atomically (temporary file, fsync, rename, fsync of the
//! directory) at an interval and at shutdown, and read at start.
//!
//! A missing file is a fresh start. A file that cannot be read, is truncated or altered (the
//! checksum does not match), has a future version or does not decode is reported on stderr,
//! counted (`crossline_agent_state_errors_total{op="load"}`), renamed aside to
//! `detect.state.bad-<unix seconds>` and replaced by a fresh start: the state is restored whole
//! or not at all. Persons hashed under another PI key (the fingerprint differs) cannot be merged
//! with new ones: they are dropped with a warning, the rest is restored.
//!
//! A registry reload keeps every counter (they are keyed by scenario id and USCC); counters of
//! scenarios that left the registry are dropped when the state is written, once their last day
//! is `GONE_GRACE_DAYS` (7) behind the latest counted day.

use super::counters::{ExpiryBook, PersonsBook, PersonsState, VolumeBook, VolumeState};
use super::{lock, DetectShared};
use crossline_config::event::{Event, EventType, PersonsSketch, Sketch, VolumeSketch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Name of the state file in the state directory.
pub const STATE_FILE: &str = "detect.state";
/// Format version written; files with a higher version are not read.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &str = "crossline-agent-state";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    gateway: String,
    key_fingerprint: String,
    saved_at_unix_ms: u64,
    persons: Vec<PersonsState>,
    volumes: Vec<VolumeState>,
    expiry: Vec<(String, i64, u32)>,
}

/// What [`DetectShared::restore_state`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// No state file: a fresh start.
    Fresh,
    /// The state was restored.
    Loaded {
        /// Persons buckets restored.
        persons: usize,
        /// Scenarios with volume counters restored.
        scenarios: usize,
        /// Persons buckets dropped because they were hashed under another PI key.
        persons_dropped: usize,
    },
    /// The file was unusable: a fresh start (warned and counted).
    Discarded {
        /// What was wrong.
        reason: String,
        /// Where the file was moved aside (None when it could not be).
        kept_aside: Option<PathBuf>,
    },
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn sha256(data: &[u8]) -> ring::digest::Digest {
    ring::digest::digest(&ring::digest::SHA256, data)
}

/// Fingerprint of a PI key: the first 8 bytes of its SHA-256, lower-case hex.
pub fn key_fingerprint(key: &[u8]) -> String {
    hex(&sha256(key).as_ref()[..8])
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Serialise a body with its header line.
fn encode(body: &Body) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(body).map_err(|e| format!("cannot serialise the state: {e}"))?;
    let mut out = format!(
        "{MAGIC} {FORMAT_VERSION} sha256:{}\n",
        hex(sha256(&json).as_ref())
    )
    .into_bytes();
    out.extend_from_slice(&json);
    Ok(out)
}

/// Check the header and checksum and decode the body.
fn decode(bytes: &[u8]) -> Result<Body, String> {
    if bytes.is_empty() {
        return Err("empty file (zero length)".to_string());
    }
    let nl = bytes
        .iter()
        .position(|b| *b == b'\n')
        .filter(|n| *n <= 200)
        .ok_or("no header line, expected \"crossline-agent-state <version> sha256:<hex>\"")?;
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| "header line is not UTF-8")?;
    let mut parts = header.split(' ');
    if parts.next() != Some(MAGIC) {
        return Err(format!(
            "header {header:?} does not start with {MAGIC:?}: not a crossline state file"
        ));
    }
    let version: u32 = parts
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("header {header:?}: expected a format version number"))?;
    if version > FORMAT_VERSION {
        return Err(format!(
            "format version {version} is newer than this agent reads (up to {FORMAT_VERSION}): written by a later release"
        ));
    }
    if version == 0 {
        return Err(format!(
            "header {header:?}: format version 0 does not exist"
        ));
    }
    let sum = parts
        .next()
        .and_then(|s| s.strip_prefix("sha256:"))
        .ok_or_else(|| format!("header {header:?}: expected sha256:<hex> after the version"))?;
    let body = &bytes[nl + 1..];
    let actual = hex(sha256(body).as_ref());
    if actual != sum {
        return Err(format!(
            "checksum mismatch ({} body bytes, sha256 {actual}, header says {sum}): truncated or altered",
            body.len()
        ));
    }
    serde_json::from_slice(body).map_err(|e| format!("body does not decode: {e}"))
}

impl DetectShared {
    /// Fingerprint of the PI key persons are hashed with (see [`key_fingerprint`]).
    pub fn key_fingerprint(&self) -> &str {
        &self.key_fingerprint
    }

    /// State files that could not be read or written (load and save), since start.
    pub fn state_errors(&self) -> (u64, u64) {
        (
            self.state_load_errors.load(Ordering::Relaxed),
            self.state_save_errors.load(Ordering::Relaxed),
        )
    }

    /// Restore the cumulative state from `dir` (call before the workers start). Never fails:
    /// problems are warned about on stderr, counted and give a fresh start.
    pub fn restore_state(&self, dir: &Path) -> Restored {
        let path = dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "crossline-agent: state: no {}, starting fresh",
                    path.display()
                );
                return Restored::Fresh;
            }
            Err(e) => return self.discard(&path, format!("cannot read: {e}")),
        };
        let body = match decode(&bytes) {
            Ok(b) => b,
            Err(reason) => return self.discard(&path, reason),
        };
        let same_key = body.key_fingerprint == self.key_fingerprint;
        let persons_in_file = body.persons.len();
        let books = (|| {
            let persons = if same_key {
                PersonsBook::from_snapshot(body.persons)?
            } else {
                PersonsBook::default()
            };
            Ok::<_, String>((
                persons,
                VolumeBook::from_snapshot(body.volumes)?,
                ExpiryBook::from_snapshot(body.expiry)?,
            ))
        })();
        let (persons, volume, expiry) = match books {
            Ok(b) => b,
            Err(reason) => return self.discard(&path, reason),
        };
        let persons_dropped = if same_key { 0 } else { persons_in_file };
        if !same_key && persons_in_file > 0 {
            self.state_load_errors.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "crossline-agent: warning: state {}: {persons_in_file} person counts were hashed with another PI key (fingerprint {}, now {}); they cannot be merged with new ones and are dropped, person counts start from zero",
                path.display(),
                body.key_fingerprint,
                self.key_fingerprint
            );
        }
        let restored = Restored::Loaded {
            persons: if same_key { persons_in_file } else { 0 },
            scenarios: volume.snapshot().len(),
            persons_dropped,
        };
        *lock(&self.persons) = persons;
        *lock(&self.volume) = volume;
        *lock(&self.expiry) = expiry;
        if body.gateway != self.gateway {
            eprintln!(
                "crossline-agent: warning: state {} was written by gateway {:?}, this is {:?}",
                path.display(),
                body.gateway,
                self.gateway
            );
        }
        eprintln!(
            "crossline-agent: state: restored {} ({restored:?})",
            path.display()
        );
        restored
    }

    fn discard(&self, path: &Path, reason: String) -> Restored {
        self.state_load_errors.fetch_add(1, Ordering::Relaxed);
        let aside = path.with_file_name(format!("{STATE_FILE}.bad-{}", unix_ms() / 1000));
        let kept_aside = match std::fs::rename(path, &aside) {
            Ok(()) => Some(aside),
            Err(_) => None,
        };
        eprintln!(
            "crossline-agent: warning: state {}: {reason}; starting fresh{}",
            path.display(),
            match &kept_aside {
                Some(p) => format!(" (the file was kept as {})", p.display()),
                None => " (the file could not be moved aside)".to_string(),
            }
        );
        Restored::Discarded { reason, kept_aside }
    }

    /// Drop counters of scenarios and enterprises that left the registry (after the grace
    /// period), and expiry warnings of filings long ended.
    fn prune_state(&self) {
        let compiled = self.registry.current();
        let reg = &compiled.registry;
        let scenarios: std::collections::HashSet<&str> =
            reg.scenarios.iter().map(|s| s.id.as_str()).collect();
        let usccs: std::collections::HashSet<&str> =
            reg.enterprises.iter().map(|e| e.uscc.as_str()).collect();
        let latest = {
            let mut v = lock(&self.volume);
            v.prune(&|id| scenarios.contains(id));
            v.latest_day()
        };
        {
            let mut p = lock(&self.persons);
            if let Some(y) = p.latest_year() {
                p.prune(&|u| usccs.contains(u), y);
            }
        }
        if let Some(day) = latest {
            lock(&self.expiry).prune(day);
        }
    }

    /// Write the state to `dir` atomically; returns the file size. On error the previous file
    /// is untouched; the error (counted) names the path and the cause.
    pub fn save_state(&self, dir: &Path) -> Result<u64, String> {
        let r = self.save_state_inner(dir);
        if r.is_err() {
            self.state_save_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn save_state_inner(&self, dir: &Path) -> Result<u64, String> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        self.prune_state();
        // Copy under the lock, encode outside it.
        let persons = lock(&self.persons).copies();
        let body = Body {
            gateway: self.gateway.clone(),
            key_fingerprint: self.key_fingerprint.clone(),
            saved_at_unix_ms: unix_ms(),
            volumes: lock(&self.volume).snapshot(),
            persons: persons.iter().map(|p| p.encode()).collect(),
            expiry: lock(&self.expiry).snapshot(),
        };
        let bytes = encode(&body)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let path = dir.join(STATE_FILE);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("cannot write state {}: {e}", path.display()));
        }
        Ok(bytes.len() as u64)
    }

    /// One `sketch` event per enterprise: its persons registers per year and category and its
    /// bytes per scenario and kept Beijing day, stamped `timestamp`.
    pub fn sketches(&self, timestamp: &str) -> Vec<Event> {
        let mut by_ent: BTreeMap<String, Sketch> = BTreeMap::new();
        let fresh = |id: &str| Sketch {
            enterprise: id.to_string(),
            uscc: None,
            key_fingerprint: self.key_fingerprint.clone(),
            persons: Vec::new(),
            volumes: Vec::new(),
        };
        let persons = lock(&self.persons).export();
        for (id, uscc, year, all, sensitive, limits) in persons {
            let s = by_ent.entry(id.clone()).or_insert_with(|| fresh(&id));
            s.uscc = Some(uscc);
            s.persons.push(PersonsSketch {
                year,
                category: "personal".to_string(),
                registers: all.encode(),
                estimate: all.estimate(),
                limit: Some(limits.all).filter(|l| *l != u64::MAX),
            });
            if let Some(h) = sensitive {
                s.persons.push(PersonsSketch {
                    year,
                    category: "sensitive".to_string(),
                    registers: h.encode(),
                    estimate: h.estimate(),
                    limit: Some(limits.sensitive).filter(|l| *l != u64::MAX),
                });
            }
        }
        let days = lock(&self.volume).all_days();
        for (scenario, ent, day, bytes, cap) in days {
            if ent.is_empty() {
                continue;
            }
            let s = by_ent.entry(ent.clone()).or_insert_with(|| fresh(&ent));
            s.volumes.push(VolumeSketch {
                scenario,
                day: day.to_string(),
                bytes,
                cap,
            });
        }
        by_ent
            .into_values()
            .map(|s| {
                let mut e = Event::new(
                    EventType::Sketch,
                    timestamp.to_string(),
                    self.gateway.clone(),
                );
                e.sketch = Some(s);
                e
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Body {
        Body {
            gateway: "gw".into(),
            key_fingerprint: "00".into(),
            saved_at_unix_ms: 1,
            persons: Vec::new(),
            volumes: vec![VolumeState {
                scenario: "s".into(),
                enterprise: "e".into(),
                cap: Some(5),
                days: vec![(20_000, 7, 1)],
                hours: vec![(480_000, 7, false)],
            }],
            expiry: vec![("s".into(), 20_100, 30)],
        }
    }

    #[test]
    fn header_checksum_and_version_are_checked() {
        let good = encode(&body()).expect("encode");
        let b = decode(&good).expect("decode");
        assert_eq!(b.volumes, body().volumes);
        // Truncated.
        assert!(decode(&good[..good.len() - 3])
            .expect_err("truncated")
            .contains("checksum"));
        // One flipped byte in the body (a digit: still valid JSON).
        let mut flipped = good.clone();
        let at = flipped
            .windows(5)
            .position(|w| w == b"20000")
            .expect("day digits");
        flipped[at] = b'3';
        assert!(decode(&flipped).expect_err("flipped").contains("checksum"));
        assert!(decode(b"").expect_err("empty").contains("zero length"));
        let future =
            String::from_utf8(good.clone())
                .expect("utf8")
                .replacen(" 1 sha256:", " 2 sha256:", 1);
        assert!(decode(future.as_bytes())
            .expect_err("future")
            .contains("newer"));
        assert!(decode(b"garbage\n{}").expect_err("magic").contains("not a"));
    }
}
