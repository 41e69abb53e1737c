//! The collector's sketch merge, in release:
//!
//! ```text
//! nice cargo run --release -p crossline-collector --example bench_sketch [ENTERPRISES]
//! ```
//!
//! 100 gateways × ENTERPRISES (default 1,000) sketch events (20,000 persons per gateway and
//! enterprise, dense registers, plus one scenario's bytes) go through `Sketches::apply` on a
//! real SQLite store, one batch per gateway and enterprise: decode, merge with the gateway's
//! previous figure, store, union over gateways, judge. Prints the time per sketch and in total,
//! and the database size.

use crossline_collector::sketch::Sketches;
use crossline_collector::store::{Batch, BatchEvent, SqliteStore, Store};
use crossline_config::event::{Event, EventType, PersonsSketch, Sketch, VolumeSketch};
use crossline_config::sketch::HyperLogLog;
use std::sync::Arc;
use std::time::Instant;

fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let enterprises: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000);
    let gateways = 100usize;
    let dir = std::env::temp_dir().join(format!("crossline-bench-sketch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let names: Vec<String> = (0..gateways).map(|g| format!("gw-{g}")).collect();
    let list = names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let cfg_path = dir.join("collector.toml");
    std::fs::write(
        &cfg_path,
        format!("listen = \"127.0.0.1:0\"\napi_listen = \"127.0.0.1:0\"\ngateways = [{list}]\n"),
    )?;
    let config = Arc::new(crossline_config::collector::load_collector(&cfg_path)?);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("c.db"), config)?);
    let sketches = Sketches::new(store, crossline_collector::util::now_ms());
    // One register set per gateway (the enterprises reuse them: the merge work is the same).
    let texts: Vec<String> = (0..gateways as u64)
        .map(|g| {
            let mut h = HyperLogLog::new();
            for p in 0..20_000u64 {
                h.insert(splitmix(g << 40 | p));
            }
            h.encode()
        })
        .collect();
    let t = Instant::now();
    let mut seq = 1u64;
    for e in 0..enterprises {
        for (g, name) in names.iter().enumerate() {
            let mut ev = Event::new(
                EventType::Sketch,
                "2026-03-02T09:00:00.000000+0000".into(),
                name.clone(),
            );
            ev.sketch = Some(Sketch {
                enterprise: format!("e{e}"),
                uscc: None,
                key_fingerprint: "00c0ffee00c0ffee".into(),
                persons: vec![PersonsSketch {
                    year: 2026,
                    category: "personal".into(),
                    registers: texts[g].clone(),
                    estimate: 20_000,
                    limit: Some(100_000_000),
                }],
                volumes: vec![VolumeSketch {
                    scenario: format!("S-{e}"),
                    day: "2026-03-02".into(),
                    bytes: 1_000,
                    cap: None,
                }],
            });
            let batch = Batch {
                gateway: name.clone(),
                stream: 1,
                sequence: seq,
                received_at_ms: 1_772_442_000_000,
                events: vec![BatchEvent {
                    event: ev,
                    ts_ms: 1_772_442_000_000,
                    json: String::new(),
                    time_flag: None,
                }],
            };
            seq += 1;
            sketches.apply(&batch, 1_772_442_000_000)?;
        }
    }
    let el = t.elapsed();
    let n = (enterprises * gateways) as f64;
    let db = std::fs::metadata(dir.join("c.db")).map_or(0, |m| m.len())
        + std::fs::metadata(dir.join("c.db-wal")).map_or(0, |m| m.len());
    println!(
        "collector sketch merge, {gateways} gateways x {enterprises} enterprises: {:.1} s, {:.2} ms per sketch event (decode, merge, store, union over all gateways, judge); database {:.0} MB",
        el.as_secs_f64(),
        el.as_secs_f64() * 1e3 / n,
        db as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
