//! CPU time of the agent's own threads, by role (`capture`, `worker-0`, `writer`, ...).
//!
//! Each thread of the data path names its role once when it starts ([`register`]). The times
//! are read from the kernel's accounting of each thread (`/proc/self/task/TID/schedstat`,
//! nanoseconds on a CPU) when someone asks ([`cpu_seconds_by_role`], at each `/metrics`
//! scrape): nothing is measured on the threads themselves, so the hot path pays nothing. A
//! thread that ends adds its final time to its role's total, so each role's figure only
//! grows, whatever threads come and go under it.
//!
//! What it tells an operator: a thread whose CPU time grows by close to a second per second is
//! at its limit. When that thread is a capture thread (or, with several workers, a worker),
//! the gateway's traffic is about to outrun the agent, and the kernel's ring will start to
//! drop; a higher `capture.workers` (live: one capture handle per worker, spread by the
//! kernel) spreads the load.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A thread counted under a role.
#[derive(Debug)]
struct Entry {
    /// Which registration this is (what its guard names).
    serial: u64,
    tid: i32,
    role: String,
    /// The thread's seconds when it took this role (0 for a thread's first role: its time
    /// from its start counts).
    base: f64,
    /// Seconds at the last reading.
    last: f64,
}

impl Entry {
    /// Seconds counted under the role.
    fn counted(&self) -> f64 {
        (self.last - self.base).max(0.0)
    }
}

#[derive(Debug, Default)]
struct Threads {
    registered: u64,
    live: Vec<Entry>,
    /// Final totals of the threads that ended, by role.
    ended: BTreeMap<String, f64>,
}

static THREADS: Mutex<Threads> = Mutex::new(Threads {
    registered: 0,
    live: Vec::new(),
    ended: BTreeMap::new(),
});

fn threads() -> std::sync::MutexGuard<'static, Threads> {
    THREADS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The calling thread's CPU time counted under `role` while the returned guard lives (its
/// time since it started included). Keep the guard for the life of the thread: when it drops,
/// the thread's final time goes to the role's total.
#[must_use = "the thread is counted while the guard lives"]
pub fn register(role: impl Into<String>) -> Counted {
    let tid = rustix::thread::gettid().as_raw_nonzero().get();
    let role = role.into();
    let now = cpu_seconds_of(tid).unwrap_or(0.0);
    let mut t = threads();
    // The same thread registered again (its role handed on): its time so far stays with the
    // role it had, and only what follows counts under the new one.
    let base = match t.live.iter().position(|e| e.tid == tid) {
        Some(i) => {
            let mut old = t.live.swap_remove(i);
            old.last = old.last.max(now);
            *t.ended.entry(old.role.clone()).or_default() += old.counted();
            now
        }
        None => 0.0,
    };
    t.registered += 1;
    let serial = t.registered;
    t.live.push(Entry {
        serial,
        tid,
        role,
        base,
        last: now,
    });
    Counted { serial, tid }
}

/// A registered thread (see [`register`]).
#[derive(Debug)]
pub struct Counted {
    serial: u64,
    tid: i32,
}

impl Drop for Counted {
    fn drop(&mut self) {
        // Still on the thread: its final time is readable.
        let now = cpu_seconds_of(self.tid);
        let mut t = threads();
        if let Some(i) = t.live.iter().position(|e| e.serial == self.serial) {
            let mut e = t.live.swap_remove(i);
            e.last = now.unwrap_or(e.last).max(e.last);
            *t.ended.entry(e.role.clone()).or_default() += e.counted();
        }
    }
}

/// CPU seconds of every role so far: the live threads read now, plus the threads that ended.
pub fn cpu_seconds_by_role() -> BTreeMap<String, f64> {
    let mut t = threads();
    let mut out = t.ended.clone();
    let Threads { live, ended, .. } = &mut *t;
    live.retain_mut(|e| match cpu_seconds_of(e.tid) {
        Some(s) => {
            e.last = e.last.max(s);
            *out.entry(e.role.clone()).or_default() += e.counted();
            true
        }
        // Gone without its guard dropping (the guard was leaked): what was read last is its
        // total.
        None => {
            *ended.entry(e.role.clone()).or_default() += e.counted();
            *out.entry(e.role.clone()).or_default() += e.counted();
            false
        }
    });
    out
}

/// CPU seconds of thread `tid` of this process: `schedstat`'s nanoseconds on a CPU, else
/// `stat`'s user and system times (clock ticks of 1/100 s, the unit Linux reports them in).
fn cpu_seconds_of(tid: i32) -> Option<f64> {
    let dir = format!("/proc/self/task/{tid}");
    if let Ok(s) = std::fs::read_to_string(format!("{dir}/schedstat")) {
        if let Some(ns) = s
            .split_ascii_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
        {
            return Some(ns as f64 / 1e9);
        }
    }
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    stat_cpu_seconds(&stat)
}

/// User plus system time from the text of `/proc/PID/task/TID/stat`: fields 14 and 15,
/// counted after the command name, which is in parentheses and may hold spaces.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after.split_ascii_whitespace();
    // `after` starts at field 3 (state): utime is field 14, 11 further on.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spin on this thread for `for_ms` of wall time.
    fn burn(for_ms: u64) -> u64 {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(for_ms);
        let mut x = 1u64;
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        x
    }

    #[test]
    fn a_busy_thread_shows_its_time_under_its_role_and_keeps_it_after_it_ends() {
        let role = "test-busy";
        let before = cpu_seconds_by_role().get(role).copied().unwrap_or(0.0);
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let _counted = register(role);
            std::hint::black_box(burn(300));
            let _ = tx.send(());
            let _ = done_rx.recv();
        });
        rx.recv().expect("thread burnt");
        let running = cpu_seconds_by_role()[role] - before;
        // 300 ms of spinning, on a machine that may share the core with other tests.
        assert!(running >= 0.05, "{running} s counted while it ran");
        assert!(running < 30.0, "{running} s");
        drop(done_tx);
        h.join().expect("join");
        let ended = cpu_seconds_by_role()[role] - before;
        assert!(
            ended >= running,
            "{ended} s after it ended, {running} before"
        );
        assert!(
            !threads().live.iter().any(|e| e.role == role),
            "the ended thread is no longer read"
        );
        // A quiet role registered after it: its own small figure, the busy one unchanged.
        let quiet = std::thread::spawn(|| {
            let _c = register("test-quiet");
            cpu_seconds_by_role()
        })
        .join()
        .expect("join");
        assert!(quiet["test-quiet"] < running, "{quiet:?}");
        assert!(quiet[role] >= ended, "{quiet:?}");
    }

    #[test]
    fn a_thread_that_takes_another_role_counts_on_under_it() {
        let (first, second) = ("test-first", "test-second");
        let base = cpu_seconds_by_role();
        let at = |m: &BTreeMap<String, f64>, r: &str| m.get(r).copied().unwrap_or(0.0);
        let seen = std::thread::spawn(move || {
            let a = register(first);
            std::hint::black_box(burn(200));
            let mid = cpu_seconds_by_role();
            let b = register(second);
            std::hint::black_box(burn(200));
            // The guard of the role given up ends nothing: the thread still counts.
            drop(a);
            let still = cpu_seconds_by_role().contains_key(second)
                && threads().live.iter().any(|e| e.role == second);
            let me = rustix::thread::gettid().as_raw_nonzero().get();
            let total = cpu_seconds_of(me).unwrap_or(0.0);
            drop(b);
            (mid, still, total, cpu_seconds_by_role())
        })
        .join()
        .expect("join");
        let (mid, still, total, end) = seen;
        assert!(still, "dropping the first guard ended the second role");
        let first_mid = at(&mid, first) - at(&base, first);
        let (first_end, second_end) = (
            at(&end, first) - at(&base, first),
            at(&end, second) - at(&base, second),
        );
        assert!(first_mid >= 0.03, "{mid:?}");
        // The first role keeps what it had (and a little more, up to the hand-over), the
        // second counts only what came after: not the thread's time from its start.
        assert!(
            first_end >= first_mid && first_end < first_mid + 0.1,
            "{end:?}"
        );
        assert!(second_end >= 0.03, "{end:?}");
        // Not the thread's whole time (which includes the first role's).
        assert!(second_end < total - first_mid / 2.0, "{total} {end:?}");
        assert!(first_end + second_end < 30.0, "{end:?}");
        // The guard of the role given up no longer counts anything.
        assert!(!threads()
            .live
            .iter()
            .any(|e| e.role == first || e.role == second));
    }

    #[test]
    fn stat_times_are_read_after_a_command_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let stat = "4242 (crossline (x) y) S 1 2 3 4 5 6 7 8 9 10 250 125 0 0 20 0 1 0";
        assert_eq!(stat_cpu_seconds(stat), Some(3.75));
        assert_eq!(stat_cpu_seconds("4242 (cut) S 1 2"), None);
        assert_eq!(stat_cpu_seconds("no parenthesis at all"), None);
        // This thread's own: some figure, never an error.
        let me = rustix::thread::gettid().as_raw_nonzero().get();
        assert!(cpu_seconds_of(me).is_some_and(|s| s >= 0.0));
    }
}
