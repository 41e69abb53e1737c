//! Offline read speed: libpcap (`capture::offline::OfflineFiles`) against the native reader
//! (`capture::file::NativeFiles`) with `read()` and over a memory map, all through
//! `capture::file::OfflineInput` as the pipeline uses them, on the same file, the order
//! rotated from run to run. Each packet's bytes are touched (a checksum of the first and last
//! byte) so no reader can skip them; all must agree on packets and sum. Wall time.
//!
//! ```text
//! cargo run --release -p crossline-agent --example bench_read -- FILE [RUNS]
//! ```

use crossline_agent::capture::file::{OfflineInput, OfflineReader};
use crossline_agent::capture::{PacketSource, Status};
use std::path::PathBuf;
use std::time::Instant;

/// Packets and a checksum over the bytes handed out; a file not read to its end is fatal.
fn drain(src: &mut OfflineInput) -> (u64, u64) {
    let mut n = 0u64;
    let mut sum = 0u64;
    loop {
        let st = src
            .read(1024, &mut |p| {
                n += 1;
                let d = p.data;
                sum = sum
                    .wrapping_add(u64::from(d.first().copied().unwrap_or(0)))
                    .wrapping_add(u64::from(d.last().copied().unwrap_or(0)))
                    .wrapping_add(u64::from(p.orig_len))
                    .wrapping_add(p.ts_micros as u64);
            })
            .unwrap_or_else(|e| panic!("read: {e}"));
        if st == Status::End {
            let errors = src.take_file_errors();
            assert!(errors.is_empty(), "{errors:?}");
            return (n, sum);
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next().map(PathBuf::from) else {
        eprintln!("usage: bench_read FILE [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(7);
    let files = [file.clone()];
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let readers = [
        OfflineReader::Libpcap,
        OfflineReader::Native,
        OfflineReader::Mmap,
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); readers.len()];
    let mut expect = None;
    for run in 0..runs {
        // Rotate which goes first, so a load change hits all alike.
        for k in 0..readers.len() {
            let which = (run + k) % readers.len();
            let reader = readers[which];
            let t = Instant::now();
            let mut s = OfflineInput::open(&files, None, reader).expect("open");
            let (n, sum) = drain(&mut s);
            let secs = t.elapsed().as_secs_f64();
            match expect {
                None => expect = Some((n, sum)),
                Some(e) => assert_eq!(e, (n, sum), "readers disagree"),
            }
            let pps = n as f64 / secs;
            println!(
                "run {run} {:8} {n} packets in {:.3} s: {:.2} Mpkt/s, {:.0} MB/s",
                format!("{reader:?}"),
                secs,
                pps / 1e6,
                size as f64 / secs / 1e6
            );
            rates[which].push(pps);
        }
    }
    let med: Vec<f64> = rates.iter_mut().map(|v| median(v)).collect();
    println!(
        "median over {runs} runs: libpcap {:.2} Mpkt/s, native {:.2} Mpkt/s, mmap {:.2} Mpkt/s; \
         native/libpcap {:.2}x, mmap/libpcap {:.2}x",
        med[0] / 1e6,
        med[1] / 1e6,
        med[2] / 1e6,
        med[1] / med[0],
        med[2] / med[0]
    );
}
