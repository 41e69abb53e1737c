//! Hot reload of the registry and of `agent.toml`.
//!
//! [`SharedRegistry`] holds the current [`Compiled`] registry as an `Arc` behind a mutex plus a
//! generation counter. Workers cache the `Arc` and look at the generation (one relaxed atomic
//! load per flow record); only when it changed do they take the mutex to fetch the new `Arc`.
//! [`SharedRegistry::reload_from`] validates the file with `crossline_config::load_registry`;
//! an invalid file is rejected with its errors printed to stderr, the old registry stays, and
//! `reload_failures` goes up. Triggers ([`spawn_watchers`]): SIGHUP, and a change of the file's
//! modification time, polled every second by a small thread.
//!
//! A SIGHUP handled by a [`ConfigReloader`] re-reads `agent.toml` as well (and the registry it
//! names): the keys that can change live (`domestic`, `[detect]` thresholds, signatures,
//! `[[exclude]]`, the uplink's batch settings) are applied; the others are logged as needing a
//! restart with their old and new values, and keep their running value.
//!
//! Per-scenario counters (daily bytes, baselines) are keyed by scenario id, not by index, so
//! they survive a reload; flows in the tables keep their state too.

use crate::classify::Compiled;
use crossline_config::agent::{AgentConfig, DetectConfig};
use crossline_config::registry::{IpNet, Registry};
use crossline_config::time::Date;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file did not validate; the previous registry stays active.
    #[error("registry {path} rejected, keeping the previous one:\n{errors}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found in it.
        errors: crossline_config::ConfigError,
    },
}

/// The active compiled registry, swappable at run time.
#[derive(Debug)]
pub struct SharedRegistry {
    current: Mutex<Arc<Compiled>>,
    generation: AtomicU64,
    reload_failures: AtomicU64,
    domestic: Mutex<Vec<IpNet>>,
    path: Mutex<PathBuf>,
}

impl SharedRegistry {
    /// Start with an already validated registry.
    pub fn new(registry: Registry, domestic: &[IpNet], path: PathBuf) -> SharedRegistry {
        SharedRegistry {
            current: Mutex::new(Arc::new(Compiled::new(registry, domestic))),
            generation: AtomicU64::new(1),
            reload_failures: AtomicU64::new(0),
            domestic: Mutex::new(domestic.to_vec()),
            path: Mutex::new(path),
        }
    }

    /// The current compiled registry.
    pub fn current(&self) -> Arc<Compiled> {
        match self.current.lock() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Generation of the active registry; starts at 1 and goes up by one per successful reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Reloads that were refused (invalid file).
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// The file reloads read by default.
    pub fn path(&self) -> PathBuf {
        match self.path.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The domestic prefixes in force.
    pub fn domestic(&self) -> Vec<IpNet> {
        match self.domestic.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replace the active registry with an already validated one.
    pub fn swap(&self, registry: Registry) {
        let domestic = self.domestic();
        self.install(Compiled::new(registry, &domestic));
    }

    /// Replace the registry and the domestic prefixes together (a reloaded `agent.toml`).
    pub fn replace(&self, registry: Registry, domestic: Vec<IpNet>, path: &Path) {
        let compiled = Compiled::new(registry, &domestic);
        match self.domestic.lock() {
            Ok(mut g) => *g = domestic,
            Err(p) => *p.into_inner() = domestic,
        }
        if let Ok(mut p) = self.path.lock() {
            *p = path.to_path_buf();
        }
        self.install(compiled);
    }

    fn install(&self, compiled: Compiled) {
        let compiled = Arc::new(compiled);
        match self.current.lock() {
            Ok(mut g) => *g = compiled,
            Err(p) => *p.into_inner() = compiled,
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Validate `path` (as of Beijing date `today`) and make it the active registry. On error
    /// the previous registry stays, the failure counter goes up and the errors are printed.
    pub fn reload_from_at(&self, path: &Path, today: Date) -> Result<u64, ReloadError> {
        match crossline_config::load_registry(path, &self.domestic(), today) {
            Ok((registry, warnings)) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                self.swap(registry);
                if let Ok(mut p) = self.path.lock() {
                    *p = path.to_path_buf();
                }
                let generation = self.generation();
                tracing::info!(
                    "registry {} loaded (generation {generation})",
                    path.display()
                );
                Ok(generation)
            }
            Err(errors) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                let e = ReloadError::Invalid {
                    path: path.to_path_buf(),
                    errors,
                };
                tracing::error!("{e}");
                Err(e)
            }
        }
    }

    /// [`SharedRegistry::reload_from_at`] with today's Beijing date.
    pub fn reload_from(&self, path: &Path) -> Result<u64, ReloadError> {
        self.reload_from_at(path, crossline_config::today_beijing())
    }
}

/// Handle to the reload trigger threads; dropping it stops them within a second.
#[derive(Debug)]
pub struct Watchers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    signal: Option<signal_hook::SigId>,
}

impl Drop for Watchers {
    fn drop(&mut self) {
        if let Some(id) = self.signal.take() {
            signal_hook::low_level::unregister(id);
        }
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Start the reload triggers for `registry`: SIGHUP, and a poll of the registry file's
/// modification time every `poll` (one second in production).
pub fn spawn_watchers(registry: Arc<SharedRegistry>, poll: Duration) -> std::io::Result<Watchers> {
    spawn_watchers_with(registry, poll, None)
}

/// [`spawn_watchers`], with SIGHUP handled by `on_hup` (re-read `agent.toml`) instead of a
/// reload of the registry alone.
pub fn spawn_watchers_with(
    registry: Arc<SharedRegistry>,
    poll: Duration,
    on_hup: Option<Box<dyn Fn() + Send>>,
) -> std::io::Result<Watchers> {
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    let signal = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))?;
    let stop2 = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("registry-reload".into())
        .spawn(move || {
            let mut last = mtime(&registry.path());
            while !stop2.load(Ordering::Relaxed) {
                std::thread::sleep(poll);
                let path = registry.path();
                let now = mtime(&path);
                let changed = now.is_some() && now != last;
                let hupped = hup.swap(false, Ordering::Relaxed);
                if hupped || changed {
                    last = now;
                    match (&on_hup, hupped) {
                        (Some(f), true) => f(),
                        _ => {
                            let _ = registry.reload_from(&path);
                        }
                    }
                    last = mtime(&registry.path()).or(last);
                }
            }
        })?;
    Ok(Watchers {
        stop,
        threads: vec![thread],
        signal: Some(signal),
    })
}

/// What a re-read `agent.toml` changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigChanges {
    /// Keys applied to the running agent.
    pub applied: Vec<String>,
    /// `key: old -> new` of keys that need a restart (their running value stays).
    pub need_restart: Vec<String>,
}

/// What a reload can change in the running uplink: its batch settings (implemented by the
/// uplink's handle; a trait so that detection does not depend on the uplink).
pub trait UplinkBatching: Send + Sync + std::fmt::Debug {
    /// New batch settings, for the batches sealed from now on.
    fn set_batching(&self, events: usize, bytes: usize, interval: std::time::Duration);
}

/// Re-reads `agent.toml` on SIGHUP and applies what can change live.
#[derive(Debug)]
pub struct ConfigReloader {
    running: Mutex<crossline_config::AgentConfig>,
    detect: Arc<super::DetectShared>,
    uplink: Option<Box<dyn UplinkBatching>>,
}

/// Pairs `(key, old, new)` of the values that differ, as they would be written in a log.
macro_rules! differ {
    ($out:ident, $old:expr, $new:expr, $($key:literal => $field:ident),+ $(,)?) => {
        $(
            if $old.$field != $new.$field {
                $out.push(format!("{}: {:?} -> {:?}", $key, $old.$field, $new.$field));
            }
        )+
    };
}

impl ConfigReloader {
    /// A reloader for an agent started with `running`.
    pub fn new(
        running: crossline_config::AgentConfig,
        detect: Arc<super::DetectShared>,
        uplink: Option<Box<dyn UplinkBatching>>,
    ) -> ConfigReloader {
        ConfigReloader {
            running: Mutex::new(running),
            detect,
            uplink,
        }
    }

    /// Re-read the file the running config came from (as of Beijing date `today`), apply the
    /// live keys and log the rest. An invalid file changes nothing (the registry alone is
    /// reloaded, as a SIGHUP did before).
    pub fn reload_at(&self, today: Date) -> Result<ConfigChanges, crossline_config::ConfigError> {
        let mut running = match self.running.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let path = running.path.clone();
        let (new, warnings) = match crossline_config::load_agent_config(&path, today) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(
                    "{} rejected on SIGHUP, keeping the running configuration:\n{e}",
                    path.display()
                );
                let registry = self.detect.registry();
                let _ = registry.reload_from_at(&registry.path(), today);
                return Err(e);
            }
        };
        for w in warnings {
            tracing::warn!("{w}");
        }
        let before = running.clone();
        let old = &before;
        let mut changes = ConfigChanges::default();
        let restart = restart_keys(old, &new);
        self.apply_uplink_batches(old, &new, &mut changes);
        if let Some(cfg) = self.apply_detect(old, &new, &mut changes) {
            running.detect = cfg;
        }
        if old.domestic != new.domestic {
            let show = |v: &[IpNet]| {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            changes.applied.push(format!(
                "domestic: [{}] -> [{}]",
                show(&old.domestic),
                show(&new.domestic)
            ));
        }
        // The registry (and domestic) always: the file may have changed too. This bumps the
        // generation, which makes the workers pick up the live detection settings.
        self.detect.registry().replace(
            new.registry.clone(),
            new.domestic.clone(),
            &new.registry_path,
        );
        running.domestic = new.domestic.clone();
        running.registry = new.registry.clone();
        running.registry_path = new.registry_path.clone();
        if let (Some(r), Some(n)) = (running.uplink.as_mut(), new.uplink.as_ref()) {
            if self.uplink.is_some() {
                r.batch_events = n.batch_events;
                r.batch_bytes = n.batch_bytes;
                r.batch_interval = n.batch_interval;
            }
        }
        for r in &restart {
            tracing::warn!(
                "{}: {r} needs a restart; the running value stays",
                path.display()
            );
        }
        tracing::info!(
            "{} reloaded (registry generation {}): {}",
            path.display(),
            self.detect.registry().generation(),
            if changes.applied.is_empty() {
                "no live setting changed".to_string()
            } else {
                format!("applied {}", changes.applied.join("; "))
            }
        );
        changes.need_restart = restart;
        Ok(changes)
    }

    /// New uplink batch settings are applied to the running uplink.
    fn apply_uplink_batches(
        &self,
        old: &AgentConfig,
        new: &AgentConfig,
        changes: &mut ConfigChanges,
    ) {
        let (Some(o), Some(n), Some(u)) = (&old.uplink, &new.uplink, &self.uplink) else {
            return;
        };
        if (o.batch_events, o.batch_bytes, o.batch_interval)
            != (n.batch_events, n.batch_bytes, n.batch_interval)
        {
            u.set_batching(n.batch_events, n.batch_bytes, n.batch_interval);
            changes.applied.push(format!(
                "uplink batches: {} events / {} bytes / {:?} -> {} / {} / {:?}",
                o.batch_events,
                o.batch_bytes,
                o.batch_interval,
                n.batch_events,
                n.batch_bytes,
                n.batch_interval
            ));
        }
    }

    /// Live detection settings (signatures, exclusions, thresholds): applied to the workers
    /// when they changed; returns the `[detect]` now running (start-only keys unchanged).
    fn apply_detect(
        &self,
        old: &AgentConfig,
        new: &AgentConfig,
        changes: &mut ConfigChanges,
    ) -> Option<DetectConfig> {
        let live_detect = |c: &DetectConfig| {
            (
                c.min_export_bytes,
                c.pi_scan_bytes,
                c.green_channel_raise,
                c.expiry_warning_days,
                c.surge_k.to_bits(),
                c.surge_floor_bytes,
                c.misuse_sources,
            )
        };
        let thresholds = live_detect(&old.detect) != live_detect(&new.detect);
        let signatures = old.detect.signatures != new.detect.signatures;
        let exclude = old.detect.exclude != new.detect.exclude;
        if !(thresholds || signatures || exclude) {
            return None;
        }
        let mut cfg = new.detect.clone();
        // The start-only settings keep their running values.
        cfg.fold_interval = old.detect.fold_interval;
        cfg.geoip.clone_from(&old.detect.geoip);
        cfg.holidays.clone_from(&old.detect.holidays);
        cfg.pi_key.clone_from(&old.detect.pi_key);
        if signatures {
            changes.applied.push(format!(
                "detect.signatures: {} -> {}",
                old.detect.signatures.len(),
                new.detect.signatures.len()
            ));
        }
        if exclude {
            changes.applied.push(format!(
                "exclude: {} -> {} entries",
                old.detect.exclude.len(),
                new.detect.exclude.len()
            ));
        }
        if thresholds {
            changes.applied.push("detect thresholds".to_string());
        }
        self.detect.set_live(cfg.clone());
        Some(cfg)
    }
}

/// `key: old -> new` of the changed keys that need a restart, in the order of the file.
fn restart_keys(old: &AgentConfig, new: &AgentConfig) -> Vec<String> {
    let mut restart = Vec::new();
    if old.gateway != new.gateway {
        restart.push(format!("gateway: {:?} -> {:?}", old.gateway, new.gateway));
    }
    differ!(restart, old.capture, new.capture,
        "capture.interfaces" => interfaces,
        "capture.snaplen" => snaplen,
        "capture.buffer_bytes" => buffer_bytes,
        "capture.workers" => workers,
        "capture.flows_per_worker" => flows_per_worker,
        "capture.queue_batches" => queue_batches,
        "capture.filter" => filter,
        "capture.user" => user,
        "capture.tcp_established_timeout" => tcp_established_timeout,
        "capture.tcp_unestablished_timeout" => tcp_unestablished_timeout,
        "capture.tcp_closed_timeout" => tcp_closed_timeout,
        "capture.udp_timeout" => udp_timeout,
        "capture.icmp_timeout" => icmp_timeout,
        "capture.active_timeout" => active_timeout,
        "capture.fragment_entries" => fragment_entries,
        "capture.tls_reassembly_bytes" => tls_reassembly_bytes,
        "capture.dns_cache_entries" => dns_cache_entries,
        "capture.writer_nice" => writer_nice,
    );
    differ!(restart, old.metrics, new.metrics, "metrics.listen" => listen);
    differ!(restart, old.detect, new.detect,
        "detect.fold_interval" => fold_interval,
        "detect.geoip" => geoip,
        "detect.holidays" => holidays,
    );
    if old.detect.pi_key != new.detect.pi_key {
        // Never log a secret.
        restart.push("detect.pi_key: (changed; value not logged)".to_string());
    }
    match (&old.uplink, &new.uplink) {
        (Some(o), Some(n)) => {
            differ!(restart, o, n,
                "uplink.collector" => collectors,
                "uplink.server_name" => server_name,
                "uplink.ca" => ca,
                "uplink.cert" => cert,
                "uplink.key" => key,
                "uplink.spool_dir" => spool_dir,
                "uplink.spool_max_bytes" => spool_max_bytes,
                "uplink.spool_segment_bytes" => spool_segment_bytes,
                "uplink.fsync" => fsync,
                "uplink.send_flows" => send_flows,
                "uplink.backoff_min" => backoff_min,
                "uplink.backoff_max" => backoff_max,
            );
        }
        (None, None) => {}
        (o, n) => restart.push(format!(
            "[uplink]: {} -> {}",
            if o.is_some() { "present" } else { "absent" },
            if n.is_some() { "present" } else { "absent" }
        )),
    }
    restart
}

impl ConfigReloader {
    /// [`ConfigReloader::reload_at`] with today's Beijing date.
    pub fn reload(&self) -> Result<ConfigChanges, crossline_config::ConfigError> {
        self.reload_at(crossline_config::today_beijing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tests::{domestic, registry, REGISTRY};

    fn wait_for(reg: &SharedRegistry, generation: u64) -> bool {
        for _ in 0..100 {
            if reg.generation() >= generation {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn file_change_and_sighup_trigger_reloads() {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let dir = tmp.path();
        let path = dir.join("registry.toml");
        std::fs::write(&path, REGISTRY).expect("write");
        let reg = Arc::new(SharedRegistry::new(
            registry(REGISTRY),
            &domestic(),
            path.clone(),
        ));
        let before = reg.current();
        let watchers = spawn_watchers(Arc::clone(&reg), Duration::from_millis(20)).expect("watch");
        // A changed file (new mtime) is picked up.
        std::thread::sleep(Duration::from_millis(1100));
        let fewer = REGISTRY.replacen("id = \"S-6\"", "id = \"S-7\"", 1);
        std::fs::write(&path, &fewer).expect("write");
        assert!(wait_for(&reg, 2), "mtime change not picked up");
        let after = reg.current();
        assert!(!Arc::ptr_eq(&before, &after));
        assert!(after.registry.scenarios.iter().any(|s| s.id == "S-7"));
        // SIGHUP reloads too (same file).
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).expect("raise");
        assert!(wait_for(&reg, 3), "SIGHUP not picked up");
        // An invalid file is refused: generation unchanged, failure counted.
        std::thread::sleep(Duration::from_millis(1100));
        std::fs::write(&path, "[[scenario]]\nid = 1\n").expect("write");
        for _ in 0..100 {
            if reg.reload_failures() > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!((reg.generation(), reg.reload_failures()), (3, 1));
        assert!(reg
            .current()
            .registry
            .scenarios
            .iter()
            .any(|s| s.id == "S-7"));
        drop(watchers);
    }
}
