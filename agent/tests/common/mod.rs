//! Helpers shared by the data-plane integration tests: the agent binary, a minimal config,
//! IPv4 fragmentation of generated frames, pcapng files, and the /work/shared corpus rule.
#![allow(dead_code)]

pub mod frames;
pub mod netns;

use crossline_config::event::Event;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `crossline-agent` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crossline-agent"))
}

/// The shared corpus directory, or None (printing SKIPPED) when it is missing outside CI;
/// under `CI=true` a missing corpus fails the test.
pub fn shared() -> Option<PathBuf> {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    if p.is_dir() {
        return Some(p.to_path_buf());
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("../shared not found (CI=true)");
    }
    eprintln!("SKIPPED: ../shared not found");
    None
}

/// A fresh, uniquely named temporary directory (`tempfile`), removed when dropped; kept (and
/// its path printed) when the test is failing, to look at what it left.
#[derive(Debug)]
pub struct Scratch(tempfile::TempDir);

/// [`Scratch`] named after the test (`crossline-TAG-` and a random suffix). Mode 0755, like a
/// directory made with `create_dir_all`, so an agent that has switched to a service user can
/// still reach the files in it.
pub fn scratch(tag: &str) -> Scratch {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(&format!("crossline-{tag}-"))
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir()
        .expect("temporary directory");
    Scratch(dir)
}

impl Scratch {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.disable_cleanup(true);
            eprintln!("kept {} (test failed)", self.0.path().display());
        }
    }
}

/// A fresh directory with `agent.toml` (gateway, domestic 10/8, `extra` appended) and a
/// registry with one filed scenario (10.20.0.0/16 -> 198.51.100.0/24).
pub fn config_dir(tag: &str, extra: &str) -> Scratch {
    let dir = scratch(&format!("plane-{tag}"));
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "gateway = \"gw-plane-01\"\ndomestic = [\"10.0.0.0/8\"]\nregistry = \"registry.toml\"\n{extra}"
        ),
    )
    .expect("write agent.toml");
    std::fs::write(
        dir.join("registry.toml"),
        r#"[[enterprise]]
id = "acme"
name = "Acme"
uscc = "91350100M000100Y43"

[[scenario]]
id = "SA-2026-0001"
enterprise = "acme"
basis = "security_assessment"
filing_ref = "X-1"
recipient = { name = "R", country = "DE" }
activity = "academic_cooperation"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.20.0.0/16"]
destinations = ["198.51.100.0/24"]
"#,
    )
    .expect("write registry.toml");
    dir
}

/// Run `analyze` on `pcaps` with `dir/agent.toml`; returns the output file's bytes, stderr and
/// whether it exited 0.
pub fn analyze(dir: &Path, pcaps: &[&Path], workers: usize, out: &str) -> (Vec<u8>, String, bool) {
    let out = dir.join(out);
    let o = bin()
        .arg("analyze")
        .arg("--config")
        .arg(dir.join("agent.toml"))
        .arg("--workers")
        .arg(workers.to_string())
        .arg("--out")
        .arg(&out)
        .args(pcaps)
        .output()
        .expect("run crossline-agent");
    let bytes = std::fs::read(&out).unwrap_or_default();
    (
        bytes,
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.success(),
    )
}

/// Parse JSON lines.
pub fn events(bytes: &[u8]) -> Vec<Event> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l}: {e}")))
        .collect()
}

/// Split an Ethernet + IPv4 (no options) frame into fragments of at most `chunk` bytes of IP
/// payload (`chunk` a multiple of 8), with IP identification `id`.
pub fn fragment_ipv4(frame: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    assert!(
        chunk.is_multiple_of(8),
        "fragment size must be a multiple of 8"
    );
    let (eth, rest) = frame.split_at(14);
    let (hdr, payload) = rest.split_at(20);
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        let more = end < payload.len();
        let mut h = hdr.to_vec();
        h[2..4].copy_from_slice(&((20 + end - off) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let ff = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&ff.to_be_bytes());
        h[10] = 0;
        h[11] = 0;
        let mut sum = 0u32;
        for w in h.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        let mut f = eth.to_vec();
        f.extend_from_slice(&h);
        f.extend_from_slice(&payload[off..end]);
        out.push(f);
        off = end;
    }
    out
}

/// A pcapng file: one section, interfaces (link type Ethernet, optional `if_tsoffset` in
/// seconds) and enhanced packet blocks (microsecond timestamps).
#[derive(Debug, Default)]
pub struct Pcapng {
    ifaces: Vec<Option<i64>>,
    packets: Vec<(u32, i64, Vec<u8>)>,
}

fn block(out: &mut Vec<u8>, ty: u32, body: &[u8]) {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = (12 + body.len()) as u32;
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&len.to_le_bytes());
}

impl Pcapng {
    /// Add an interface; returns its id.
    pub fn iface(&mut self, tsoffset_secs: Option<i64>) -> u32 {
        self.ifaces.push(tsoffset_secs);
        (self.ifaces.len() - 1) as u32
    }

    /// Add a packet on interface `iface` at `ts_micros` (before the interface's offset).
    pub fn packet(&mut self, iface: u32, ts_micros: i64, frame: Vec<u8>) {
        self.packets.push((iface, ts_micros, frame));
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        block(&mut out, 0x0A0D_0D0A, &shb);
        for off in &self.ifaces {
            let mut idb = Vec::new();
            idb.extend_from_slice(&1u16.to_le_bytes());
            idb.extend_from_slice(&0u16.to_le_bytes());
            idb.extend_from_slice(&65_535u32.to_le_bytes());
            if let Some(o) = off {
                idb.extend_from_slice(&14u16.to_le_bytes());
                idb.extend_from_slice(&8u16.to_le_bytes());
                idb.extend_from_slice(&o.to_le_bytes());
                idb.extend_from_slice(&[0, 0, 0, 0]);
            }
            block(&mut out, 1, &idb);
        }
        for (iface, ts, frame) in &self.packets {
            let mut epb = Vec::new();
            let t = *ts as u64;
            epb.extend_from_slice(&iface.to_le_bytes());
            epb.extend_from_slice(&((t >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(t as u32).to_le_bytes());
            epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            epb.extend_from_slice(frame);
            block(&mut out, 6, &epb);
        }
        out
    }
}
