//! Writes `examples/demo.pcap`, the labelled sample capture for `examples/registry.toml`
//! (see `crossline_testgen::demo_capture` for what each flow shows), and prints the
//! labels:
//!
//! ```text
//! cargo run -p crossline-agent --example make_demo_pcap [OUT.pcap]
//! ```

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let out = std::env::args().nth(1).map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../examples/demo.pcap"
            ))
        },
        PathBuf::from,
    );
    let g = crossline_testgen::demo_capture();
    g.write(&out)?;
    let size = std::fs::metadata(&out)?.len();
    println!(
        "{}: {} packets, {} bytes",
        out.display(),
        g.pcap.len(),
        size
    );
    anyhow::ensure!(size < 2 << 20, "demo capture is {size} bytes, over 2 MiB");
    let mut seen = std::collections::BTreeSet::new();
    for l in &g.labels {
        if !seen.insert(l.name.clone()) {
            continue;
        }
        let alerts: Vec<&str> = l.alerts.iter().map(|k| k.as_str()).collect();
        println!(
            "  {:<45} {} -> {}  verdict={} scenario={} alerts=[{}]",
            l.name,
            l.src,
            l.dst,
            l.verdict.map_or("-", |v| v.as_str()),
            l.scenario.as_deref().unwrap_or("-"),
            alerts.join(",")
        );
    }
    Ok(())
}
