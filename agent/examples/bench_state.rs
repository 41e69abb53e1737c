//! Cumulative state and sketches, in release:
//!
//! ```text
//! nice cargo run --release -p crossline-agent --example bench_state
//! ```
//!
//! Prints: the state file size and write time (temporary file, fsync, rename) and read time for
//! 1,000 enterprises (20,000 persons each, dense registers) and 10,000 scenarios (three days of
//! bytes; 200 baseline hours each, a scenario busy ten hours a working day, and the worst case
//! of all 672 hours); the size of the `sketch` events; the HyperLogLog merge of 100 gateways ×
//! 1,000 enterprises as the collector does it (decode each gateway's registers from the event
//! text, then the union); and the relative error of the merged persons estimate against the
//! exact count on the two-gateway test data (60,000 persons each, 35,000 in common, hashed with
//! HMAC-SHA256 like the agent), over 20 keys.

use crossline_agent::detect::counters::{OwnerRef, PersonsLimits, VolumeBook, VolumeState};
use crossline_agent::detect::state::STATE_FILE;
use crossline_agent::detect::DetectShared;
use crossline_config::sketch::HyperLogLog;
use crossline_config::time::Date;
use std::hint::black_box;
use std::time::Instant;

fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn shared(dir: &std::path::Path) -> std::sync::Arc<DetectShared> {
    std::fs::write(
        dir.join("registry.toml"),
        "[[enterprise]]\nid = \"e0\"\nname = \"E0\"\nuscc = \"91110108MA01PH7K91\"\n",
    )
    .expect("registry");
    std::fs::write(
        dir.join("agent.toml"),
        "gateway = \"gw-bench\"\ndomestic = [\"10.0.0.0/8\"]\nregistry = \"registry.toml\"\n",
    )
    .expect("agent.toml");
    let cfg = crossline_config::load_agent_config(
        &dir.join("agent.toml"),
        Date::new(2026, 3, 1).expect("date"),
    )
    .expect("config")
    .0;
    DetectShared::new(&cfg).expect("detect")
}

fn state_bench(hours_per_scenario: i64, label: &str) {
    let dir = std::env::temp_dir().join(format!("crossline-bench-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let s = shared(&dir);
    let day0 = Date::new(2026, 3, 20).expect("date");
    let hour_now = (day0.days_since_epoch() + 2) * 24 + 23;
    s.with_books(|volume, persons| {
        let limits = PersonsLimits {
            all: 100_000,
            sensitive: 10_000,
        };
        for e in 0..1_000u64 {
            let uscc = format!("U{e:017}");
            let id = format!("e{e}");
            for p in 0..20_000u64 {
                persons.add(
                    OwnerRef::Enterprise {
                        uscc: &uscc,
                        id: &id,
                    },
                    2026,
                    splitmix(e << 32 | p),
                    p % 50 == 0,
                    limits,
                );
            }
        }
        // Filled through a snapshot: adding 6.7 million hours one by one would time the
        // counters, not the state file.
        let states = (0..10_000u64)
            .map(|sc| VolumeState {
                scenario: format!("S-{sc}"),
                enterprise: format!("e{}", sc % 1_000),
                cap: Some(1 << 30),
                days: (0..3)
                    .map(|d| (day0.days_since_epoch() + d, 123_456_789 + sc, 0))
                    .collect(),
                hours: (0..hours_per_scenario)
                    .rev()
                    .map(|k| {
                        let h = hour_now - k * (672 / hours_per_scenario).max(1);
                        (h, 50_000_000 + (h as u64 % 977), false)
                    })
                    .collect(),
            })
            .collect();
        *volume = VolumeBook::from_snapshot(states).expect("volume");
    });
    let t = Instant::now();
    let size = s.save_state(&dir).expect("save");
    let write = t.elapsed();
    let t = Instant::now();
    let s2 = shared(&dir);
    let restored = s2.restore_state(&dir);
    let read = t.elapsed();
    assert!(
        matches!(
            restored,
            crossline_agent::detect::state::Restored::Loaded { .. }
        ),
        "{restored:?}"
    );
    let t = Instant::now();
    let sketches = s.sketches("2026-03-22T15:00:00.000Z");
    let bytes: usize = sketches
        .iter()
        .map(|e| serde_json::to_vec(e).map_or(0, |v| v.len()))
        .sum();
    let sk = t.elapsed();
    println!(
        "state, 1,000 enterprises x 20,000 persons, 10,000 scenarios x {label}: {STATE_FILE} {:.1} MB, write (fsync, rename) {:.0} ms, read+check {:.0} ms; {} sketch events {:.1} MB built in {:.0} ms",
        size as f64 / 1e6,
        write.as_secs_f64() * 1e3,
        read.as_secs_f64() * 1e3,
        sketches.len(),
        bytes as f64 / 1e6,
        sk.as_secs_f64() * 1e3,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn merge_bench() {
    // 100 gateways' registers (20,000 persons each, different per gateway), as event text.
    let texts: Vec<String> = (0..100u64)
        .map(|g| {
            let mut h = HyperLogLog::new();
            for p in 0..20_000u64 {
                h.insert(splitmix(g << 40 | p));
            }
            h.encode()
        })
        .collect();
    let t = Instant::now();
    let mut total = 0u64;
    for e in 0..1_000usize {
        let mut u = HyperLogLog::new();
        for g in 0..texts.len() {
            // Rotate so each enterprise sees the texts in another order.
            let h = HyperLogLog::decode(&texts[(e + g) % texts.len()]).expect("decode");
            u.merge(&h);
        }
        total += black_box(u.estimate());
    }
    let el = t.elapsed();
    println!(
        "merge, 100 gateways x 1,000 enterprises (decode + union, 100,000 sketches, then 1,000 estimates): {:.2} s, {:.1} µs per gateway sketch (estimate per enterprise {})",
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / 100_000.0,
        total / 1_000
    );
}

fn error_bench() {
    let mut errors = Vec::new();
    for k in 0..20u8 {
        let key = [k; 32];
        let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let hash = |i: u64| {
            let mut m = ring::hmac::Context::with_key(&mac);
            m.update(&[0u8]);
            m.update(format!("person-{i}").as_bytes());
            let out = m.sign();
            u64::from_le_bytes(out.as_ref()[..8].try_into().expect("8 bytes"))
        };
        let mut a = HyperLogLog::new();
        let mut b = HyperLogLog::new();
        for i in 0..60_000 {
            a.insert(hash(i));
        }
        for i in 25_000..85_000 {
            b.insert(hash(i));
        }
        let mut u = HyperLogLog::decode(&a.encode()).expect("a");
        u.merge(&HyperLogLog::decode(&b.encode()).expect("b"));
        errors.push((u.estimate() as f64 - 85_000.0) / 85_000.0);
    }
    let mean_abs = errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64;
    let max_abs = errors.iter().map(|e| e.abs()).fold(0.0, f64::max);
    println!(
        "merged persons vs exact (60,000 + 60,000, 35,000 shared = 85,000), 20 keys: mean |error| {:.2}%, max |error| {:.2}% (standard error 1.04/sqrt(16384) = {:.2}%)",
        mean_abs * 100.0,
        max_abs * 100.0,
        HyperLogLog::relative_error() * 100.0
    );
}

fn main() {
    state_bench(200, "200 busy hours");
    state_bench(672, "672 hours (worst case)");
    merge_bench();
    error_bench();
}
