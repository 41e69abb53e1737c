//! Benchmark: load and validate a registry of 10,000 scenarios of 1,000 enterprises.
//!
//! `cargo run --release -p crossline-config --example bench_registry [-- RUNS [KEEP_PATH]]`
//!
//! Generates the registry (every USCC valid, every scenario distinct except 90 deliberate
//! duplicates that raise the duplicate-coverage warning), writes it to a temporary file, loads it
//! RUNS times (default 11) and prints the median wall time, together with a baseline measured in
//! the same run (the bare TOML deserialization of the same text into `toml::Table`), so the ratio
//! compares across machines. CPU time (all threads, from `/proc/self/stat`) is printed too: large
//! files are deserialized in parallel chunks, so wall time depends on idle cores.

use crossline_config::checks::uscc_complete;
use crossline_config::load_registry;
use crossline_config::parse::parse_ip_net;
use crossline_config::time::Date;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const ENTERPRISES: usize = 1_000;
const SCENARIOS: usize = 10_000;

fn generate() -> String {
    const CODE_SET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let mut out = String::with_capacity(SCENARIOS * 520);
    for e in 0..ENTERPRISES {
        let body: String = (0..8)
            .map(|i| char::from(CODE_SET[(e * 7 + i * 13 + e / 31) % CODE_SET.len()]))
            .collect();
        let uscc = uscc_complete(&format!("91110108{body}")).expect("charset body");
        let _ = writeln!(
            out,
            "[[enterprise]]\nid = \"ent-{e:04}\"\nname = \"Enterprise {e} (Beijing) Co., Ltd.\"\nuscc = \"{uscc}\"\ngreen_channel = {}\nftz = {}\n",
            e % 7 == 0,
            e % 5 == 0
        );
    }
    for s in 0..SCENARIOS {
        let e = s % ENTERPRISES;
        // Scenarios get distinct coverage, except every 100th from the second thousand on,
        // which copies the coverage of the enterprise's first scenario (90 warnings).
        let n = if s % 100 == 99 && s >= ENTERPRISES {
            s % ENTERPRISES
        } else {
            s
        };
        let (a, b) = (n / 250, n % 250);
        let basis = match s % 5 {
            0 => "basis = \"security_assessment\"",
            1 => "basis = \"standard_contract\"",
            2 => "basis = \"certification\"",
            3 => "basis = \"exemption\"\nexemption = \"art5_contract\"",
            _ => "basis = \"ftz_negative_list\"",
        };
        let _ = writeln!(
            out,
            r#"[[scenario]]
id = "SC-{s:05}"
enterprise = "ent-{e:04}"
{basis}
filing_ref = "FICTIONAL-{s:05}"
recipient = {{ name = "Recipient {s}", country = "DE" }}
activity = "academic_cooperation"
data = ["personal", "sensitive_personal"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.{a}.{b}.0/24", "fd00:{a:x}:{b:x}::/48"]
destinations = ["*.r{n}.example", "api.r{n}.example", "198.51.100.0/24", "2001:db8:{n:x}::/48"]
services = ["tcp/443", "udp/443", "tcp/8000-8100"]
window = {{ days = "mon-fri", hours = "22:00-06:00" }}
caps = {{ bytes_per_day = "20 GiB" }}
persons_per_year = {p}
"#,
            p = 1000 + s
        );
    }
    out
}

/// CPU time (user + system, all threads) of this process so far, from `/proc/self/stat`, in
/// clock ticks of 10 ms. `None` where that file does not exist.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Run `f`, returning its wall time and CPU ticks.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration, u64) {
    let c = cpu_ticks().unwrap_or(0);
    let t = Instant::now();
    let out = f();
    let wall = t.elapsed();
    (out, wall, cpu_ticks().unwrap_or(0).saturating_sub(c))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(11);
    let text = generate();
    let dir = std::env::temp_dir().join(format!("crossline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join("registry.toml");
    std::fs::write(&path, &text).expect("write registry");
    let domestic = [
        parse_ip_net("10.0.0.0/8").expect("valid"),
        parse_ip_net("fd00::/8").expect("valid"),
    ];
    let today = Date::new(2026, 11, 27).expect("valid");

    // The three measurements are interleaved so that load from other processes hits them alike.
    let (mut load, mut baseline, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    let (mut load_cpu, mut baseline_cpu, mut raw_cpu) = (0u64, 0u64, 0u64);
    let mut warnings = 0;
    let mut scenarios = 0;
    for _ in 0..runs {
        let (result, wall, cpu) = measure(|| load_registry(&path, &domestic, today));
        let (reg, w) = result.expect("generated registry is valid");
        load.push(wall);
        load_cpu += cpu;
        warnings = w.len();
        scenarios = reg.scenarios.len();

        let (table, wall, cpu) = measure(|| toml::from_str::<toml::Table>(&text));
        std::hint::black_box(table.expect("valid TOML"));
        baseline.push(wall);
        baseline_cpu += cpu;

        let (r, wall, cpu) =
            measure(|| toml::from_str::<crossline_config::raw::RawRegistry>(&text));
        std::hint::black_box(r.expect("valid"));
        raw.push(wall);
        raw_cpu += cpu;
    }
    let cpu_ms = |ticks: u64| ticks as f64 * 10.0 / runs as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let min = |v: &[Duration]| v.iter().copied().min().unwrap_or_default();
    let (lmin, bmin, rmin) = (min(&load), min(&baseline), min(&raw));
    let (l, b, r) = (median(load), median(baseline), median(raw));
    println!(
        "registry: {} bytes, {ENTERPRISES} enterprises, {scenarios} scenarios, {warnings} warnings, {runs} runs",
        text.len()
    );
    println!(
        "load_registry (read + deserialize + validate): median {:7.1} ms  min {:7.1} ms  cpu {:7.1} ms",
        ms(l),
        ms(lmin),
        cpu_ms(load_cpu)
    );
    println!(
        "  serial typed deserialization (RawRegistry):  median {:7.1} ms  min {:7.1} ms  cpu {:7.1} ms",
        ms(r),
        ms(rmin),
        cpu_ms(raw_cpu)
    );
    println!(
        "baseline toml::from_str::<toml::Table>:         median {:7.1} ms  min {:7.1} ms  cpu {:7.1} ms",
        ms(b),
        ms(bmin),
        cpu_ms(baseline_cpu)
    );
    println!(
        "ratio load/baseline: median {:.2}, min {:.2}",
        l.as_secs_f64() / b.as_secs_f64(),
        lmin.as_secs_f64() / bmin.as_secs_f64()
    );
    // A second argument keeps a copy of the generated registry (to compare other parsers).
    if let Some(keep) = std::env::args().nth(2) {
        std::fs::copy(&path, &keep).expect("copy registry");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
