//! Bounded stress run: 2,000 mutated captures from the shared real corpus through the
//! `analyze` binary (debug build), each with a time limit. Mutations (deterministic seed): random
//! byte flips, a cut at a random length, a 32-bit word overwritten with an extreme value (hits
//! record lengths, time stamps, link types), and a slice spliced in twice. Every run must end
//! within the limit (no hang) and exit 0, or 1 with an error naming the file (a header libpcap
//! refuses); a signal, a panic or any other exit status is a crash. Failing inputs are kept in
//! the temp directory and listed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod common;

const RUNS: usize = 2000;
const SEED: u64 = 0x5eed_c405_5119_0001;
const LIMIT: Duration = Duration::from_secs(20);
const MAX_INPUT: u64 = 256 << 10;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(data: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut d = data.to_vec();
    if d.len() < 32 {
        return d;
    }
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(16) {
                let i = 24 + rng.below(d.len() - 24);
                d[i] ^= 1 << rng.below(8);
            }
        }
        1 => d.truncate(24 + rng.below(d.len() - 24)),
        2 => {
            let extremes = [0u32, u32::MAX, 0x7fff_ffff, 0x8000_0000, 0xffff, 65_536];
            for _ in 0..1 + rng.below(3) {
                let i = (rng.below(d.len() - 4)) & !3;
                let v = extremes[rng.below(extremes.len())];
                d[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => {
            let a = 24 + rng.below(d.len() - 24);
            let b = (a + 1 + rng.below(4096)).min(d.len());
            let slice = d[a..b].to_vec();
            let at = 24 + rng.below(d.len() - 24);
            d.splice(at..at, slice);
        }
    }
    d
}

enum Outcome {
    Ok,
    Refused,
    Crash(String),
    Hang,
}

fn run_one(config: &Path, input: &Path) -> Outcome {
    let child = Command::new(env!("CARGO_BIN_EXE_crossline-agent"))
        .arg("analyze")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg("/dev/null")
        .arg(input)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Outcome::Crash(format!("cannot start the agent: {e}")),
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Hang;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Outcome::Crash(format!("wait: {e}")),
        }
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => return Outcome::Crash(format!("wait: {e}")),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = input.file_name().map(|n| n.to_string_lossy().into_owned());
    match out.status.code() {
        _ if stderr.contains("panicked") => Outcome::Crash(format!("panic: {stderr}")),
        Some(0) => Outcome::Ok,
        Some(1) if name.as_deref().is_some_and(|n| stderr.contains(n)) => Outcome::Refused,
        Some(c) => Outcome::Crash(format!("exit {c}: {stderr}")),
        None => Outcome::Crash(format!("killed by a signal ({:?}): {stderr}", out.status)),
    }
}

#[test]
fn mutated_corpus_captures_never_crash_or_hang() {
    let Some(shared) = common::shared() else {
        return;
    };
    let corpus = shared.join("corpus/real");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", corpus.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            (ext == "pcap" || ext == "pcapng")
                && std::fs::metadata(p).is_ok_and(|m| m.len() <= MAX_INPUT)
        })
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 20,
        "too few corpus captures under {}: {}",
        corpus.display(),
        inputs.len()
    );
    let config = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/agent.toml"
    ));
    let dir = common::scratch("stress");
    // The mutated files, generated up front from the seed (deterministic whatever the threads).
    let mut rng = Rng(SEED);
    let mut jobs = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let src = &inputs[rng.below(inputs.len())];
        let data = std::fs::read(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let ext = src.extension().and_then(|e| e.to_str()).unwrap_or("pcap");
        let path = dir.join(format!("mut-{i:04}.{ext}"));
        std::fs::write(&path, mutate(&data, &mut rng)).expect("write mutated capture");
        jobs.push((path, src.clone()));
    }
    let next = AtomicUsize::new(0);
    let ok = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, src)) = jobs.get(i) else {
                    break;
                };
                match run_one(config, path) {
                    Outcome::Ok => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        let _ = std::fs::remove_file(path);
                    }
                    Outcome::Refused => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        let _ = std::fs::remove_file(path);
                    }
                    Outcome::Hang => failures.lock().expect("lock").push(format!(
                        "HANG (> {LIMIT:?}) {} (from {})",
                        path.display(),
                        src.display()
                    )),
                    Outcome::Crash(why) => failures.lock().expect("lock").push(format!(
                        "CRASH {} (from {}): {why}",
                        path.display(),
                        src.display()
                    )),
                }
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    eprintln!(
        "stress: {RUNS} mutated captures from {} corpus files in {:?}: {} analysed, {} refused \
         with an error naming the file, {} crashes or hangs",
        inputs.len(),
        started.elapsed(),
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
