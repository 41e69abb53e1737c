//! Flow-table memory at N concurrent flows (default 1,000,000): fills one worker's
//! [`FlowTracker`] — with the classifier's real per-flow state and the L7 state slot, exactly
//! the entry type the agent uses — with N distinct TCP flows (one SYN each, so nothing expires
//! or is evicted), then prints the resident-set growth per flow next to the static size of an
//! entry. Also reports the insert rate.
//!
//! Run: `cargo run --release -p crossline-agent --example bench_flows [N]` (bench/run.sh does).
//! RSS is read from `/proc/self/statm`; the "measured" figure is what the target is judged on.

use crossline_agent::decode::{ip_proto, tcp_flags, Decoded};
use crossline_agent::detect::FlowState;
use crossline_agent::flow::{Flow, FlowTracker};
use crossline_agent::taps::L7State;
use crossline_config::agent::CaptureConfig;
use std::hint::black_box;
use std::time::Instant;

/// Resident set size of this process in bytes (Linux), 0 when unknown.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A SYN of flow number `i`: distinct client address and port, fixed server.
fn syn(i: u32) -> Decoded {
    let mut d = Decoded {
        proto: ip_proto::TCP,
        src_port: 1024 + (i % 60_000) as u16,
        dst_port: 443,
        tcp_flags: tcp_flags::SYN,
        tcp_seq: i,
        ..Decoded::default()
    };
    let host = i / 60_000;
    d.src[..4].copy_from_slice(&[10, (host >> 8) as u8, host as u8, 1]);
    d.dst[..4].copy_from_slice(&[198, 51, 100, 7]);
    d
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let cfg = CaptureConfig {
        flows_per_worker: n,
        // Nothing may expire while the table fills.
        tcp_unestablished_timeout: std::time::Duration::from_secs(3600),
        ..CaptureConfig::default()
    };
    let before = rss_bytes();
    let mut tracker: FlowTracker<FlowState, L7State> = FlowTracker::new(&cfg, 0, 1);
    let mut emitted = 0u64;
    let start = Instant::now();
    for i in 0..n as u32 {
        let d = syn(i);
        let r = tracker.on_packet(&d, 1_700_000_000_000_000 + i64::from(i), 74, &mut |_, _| {
            emitted += 1
        });
        black_box(r);
    }
    let secs = start.elapsed().as_secs_f64();
    let after = rss_bytes();
    let flows = tracker.table().len();
    let entry = std::mem::size_of::<Flow<FlowState, L7State>>();
    // The index: a u32 per bucket (slot number and hash tag), at most half full.
    let map = std::mem::size_of::<u32>();
    let per_flow = (after.saturating_sub(before)) as f64 / flows.max(1) as f64;
    println!(
        "flow table: {flows} flows, {emitted} records emitted while filling, insert {:.1} ns/flow ({:.2} M flows/s)",
        secs * 1e9 / n as f64,
        n as f64 / secs / 1e6
    );
    println!(
        "flow table: RSS {:.1} MiB -> {:.1} MiB, measured {per_flow:.1} B/flow (target <= 256); \
         static: entry {entry} B + map bucket {map} B",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    black_box(&tracker);
}
