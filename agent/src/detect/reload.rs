//! Hot reload of the registry.
//!
//! [`SharedRegistry`] holds the current [`Compiled`] registry as an `Arc` behind a mutex plus a
//! generation counter. Workers cache the `Arc` and look at the generation (one relaxed atomic
//! load per flow record); only when it changed do they take the mutex to fetch the new `Arc`.
//! [`SharedRegistry::reload_from`] validates the file with `crossline_config::load_registry`;
//! an invalid file is rejected with its errors printed to stderr, the old registry stays, and
//! `reload_failures` goes up. Triggers ([`spawn_watchers`]): SIGHUP, and a change of the file's
//! modification time, polled every second by a small thread.
//!
//! Per-scenario counters (daily bytes, baselines) are keyed by scenario id, not by index, so
//! they survive a reload; flows in the tables keep their state too.

use crate::classify::Compiled;
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
    domestic: Vec<IpNet>,
    path: Mutex<PathBuf>,
}

impl SharedRegistry {
    /// Start with an already validated registry.
    pub fn new(registry: Registry, domestic: &[IpNet], path: PathBuf) -> SharedRegistry {
        SharedRegistry {
            current: Mutex::new(Arc::new(Compiled::new(registry, domestic))),
            generation: AtomicU64::new(1),
            reload_failures: AtomicU64::new(0),
            domestic: domestic.to_vec(),
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

    /// Replace the active registry with an already validated one.
    pub fn swap(&self, registry: Registry) {
        let compiled = Arc::new(Compiled::new(registry, &self.domestic));
        match self.current.lock() {
            Ok(mut g) => *g = compiled,
            Err(p) => *p.into_inner() = compiled,
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Validate `path` (as of Beijing date `today`) and make it the active registry. On error
    /// the previous registry stays, the failure counter goes up and the errors are printed.
    pub fn reload_from_at(&self, path: &Path, today: Date) -> Result<u64, ReloadError> {
        match crossline_config::load_registry(path, &self.domestic, today) {
            Ok((registry, warnings)) => {
                for w in warnings {
                    eprintln!("warning: {w}");
                }
                self.swap(registry);
                if let Ok(mut p) = self.path.lock() {
                    *p = path.to_path_buf();
                }
                let generation = self.generation();
                eprintln!(
                    "crossline: registry {} loaded (generation {generation})",
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
                eprintln!("crossline: {e}");
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
                if hup.swap(false, Ordering::Relaxed) || changed {
                    last = now;
                    let _ = registry.reload_from(&path);
                }
            }
        })?;
    Ok(Watchers {
        stop,
        threads: vec![thread],
        signal: Some(signal),
    })
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
        let dir = std::env::temp_dir().join(format!("crossline-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
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
        let _ = std::fs::remove_dir_all(&dir);
    }
}
