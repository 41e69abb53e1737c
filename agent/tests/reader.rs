//! The native pcap/pcapng reader (`capture::file`), with `read()` and over a memory map,
//! against libpcap, packet by packet, on every capture of `tests/corpus/` and of the shared
//! real corpus: the same packets (count, time stamps to the nanosecond and as the
//! microseconds the pipeline sees, captured and wire length, link type, bytes), the same end
//! (a clean end, or an error after the same packet with the same message), and the same files
//! refused at open. Also through the pipeline: `analyze` with any of the three readers writes
//! the same events for the same files, and the mapped reader falls back to `read()` for a
//! FIFO and a piped stdin.

mod common;

use crossline_agent::capture::file::{FilePacket, FileReader, NativeFiles, ReadError};
use crossline_agent::capture::{PacketSource, Status};
use pcap::{Capture, Precision};
use std::path::{Path, PathBuf};

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "pcap" | "pcapng" | "cap"))
        })
        .collect();
    v.sort();
    v
}

/// What one file yields: packets compared, and how it ended.
#[derive(Debug, Default)]
struct Tally {
    packets: usize,
    bytes: u64,
    errors: Vec<String>,
}

/// What a packet or an end says, owned: to compare two native readers exactly.
type Step = Result<Option<(i64, i64, i64, u32, i32, Vec<u8>)>, ReadError>;

fn step(r: &Result<Option<FilePacket<'_>>, ReadError>) -> Step {
    match r {
        Ok(Some(p)) => Ok(Some((
            p.raw.ts_micros,
            p.ts_sec,
            p.ts_nsec,
            p.raw.orig_len,
            p.raw.linktype,
            p.raw.data.to_vec(),
        ))),
        Ok(None) => Ok(None),
        Err(e) => Err(e.clone()),
    }
}

/// libpcap (micro- and nanosecond precision), the native reader with `read()` and the native
/// reader over a memory map, side by side on `path`.
fn compare(path: &Path, t: &mut Tally) {
    let name = path.display();
    let lib_ns = Capture::from_file_with_precision(path, Precision::Nano);
    let lib_us = Capture::from_file(path);
    let native = std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| FileReader::new(f).map_err(|e| e.to_string()));
    let mapped = std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| FileReader::mapped(f).map_err(|e| e.to_string()));
    let (mut ns, mut us, mut nat, mut map) = match (lib_ns, lib_us, native, mapped) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        (Err(a), Err(_), Err(c), Err(d)) => {
            assert_eq!(
                c, d,
                "{name}: refused at open, mmap and native messages differ"
            );
            t.errors.push(format!("{name}: refused at open: {a} / {c}"));
            return;
        }
        (a, _, c, d) => panic!(
            "{name}: libpcap open {:?}, native open {:?}, mmap open {:?}",
            a.err(),
            c.err(),
            d.err()
        ),
    };
    let dlt = ns.get_datalink().0;
    assert_eq!(dlt, nat.linktype(), "{name}: link type");
    assert_eq!(dlt, map.linktype(), "{name}: link type (mmap)");
    let mut i = 0usize;
    loop {
        let a = ns.next_packet();
        let b = us.next_packet();
        let c = nat.next_packet();
        assert_eq!(
            step(&c),
            step(&map.next_packet()),
            "{name}: after {i} packets the mapped reader differs from the native one"
        );
        match (a, b, c) {
            (Ok(a), Ok(b), Ok(Some(c))) => {
                let at = format!("{name}: packet {i}");
                assert_eq!(a.header.ts.tv_sec, c.ts_sec, "{at}: seconds");
                assert_eq!(a.header.ts.tv_usec, c.ts_nsec, "{at}: nanoseconds");
                let micros = b.header.ts.tv_sec * 1_000_000 + b.header.ts.tv_usec;
                assert_eq!(micros, c.raw.ts_micros, "{at}: microseconds");
                assert_eq!(a.header.caplen as usize, c.raw.data.len(), "{at}: caplen");
                assert_eq!(a.header.len, c.raw.orig_len, "{at}: wire length");
                assert_eq!(dlt, c.raw.linktype, "{at}: link type");
                assert!(a.data == c.raw.data, "{at}: bytes differ");
                assert!(b.data == c.raw.data, "{at}: bytes differ (micro)");
                t.bytes += a.data.len() as u64;
                i += 1;
            }
            (Err(pcap::Error::NoMorePackets), Err(pcap::Error::NoMorePackets), Ok(None)) => {
                assert_eq!(map.consumed(), nat.consumed(), "{name}: bytes consumed");
                break;
            }
            (Err(a), Err(_), Err(c)) => {
                let a = a.to_string();
                assert_eq!(
                    a.trim_start_matches("libpcap error: "),
                    c.message,
                    "{name}: error after {i} packets differs"
                );
                t.errors.push(format!("{name}: after {i} packets: {c}"));
                break;
            }
            (a, _, c) => panic!(
                "{name}: after {i} packets libpcap gives {:?}, native gives {:?}",
                a.err(),
                c.map(|p| p.is_some())
            ),
        }
    }
    t.packets += i;
}

#[test]
fn native_and_mapped_readers_match_libpcap_on_the_repository_corpus() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus"));
    let files = captures(dir);
    assert!(
        files.len() >= 40,
        "{} captures in tests/corpus",
        files.len()
    );
    let mut t = Tally::default();
    for f in &files {
        compare(f, &mut t);
    }
    println!(
        "{} files, {} packets, {} captured bytes identical; ends with errors: {:#?}",
        files.len(),
        t.packets,
        t.bytes,
        t.errors
    );
    assert!(t.packets > 1000, "{} packets", t.packets);
}

#[test]
fn native_and_mapped_readers_match_libpcap_on_the_real_corpus() {
    let Some(shared) = common::shared() else {
        return;
    };
    let files = captures(&shared.join("corpus/real"));
    assert!(files.len() >= 100, "{} real captures", files.len());
    let mut t = Tally::default();
    for f in &files {
        compare(f, &mut t);
    }
    println!(
        "{} files, {} packets, {} captured bytes identical; ends with errors: {:#?}",
        files.len(),
        t.packets,
        t.bytes,
        t.errors
    );
    assert!(t.packets > 10_000, "{} packets", t.packets);
    // The file cut short is read up to the cut by all three, with the same message.
    assert!(
        t.errors
            .iter()
            .any(|e| e.contains("ndpi__fuzz-2021-10-13.pcap") && e.contains("truncated")),
        "{:#?}",
        t.errors
    );
}

/// Big-endian field writer.
struct Be(Vec<u8>);

impl Be {
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// A pcapng block around `body` (padded to 4 bytes).
    fn block(&mut self, bt: u32, body: &[u8]) -> &mut Self {
        let pad = body.len().div_ceil(4) * 4;
        let total = 12 + pad as u32;
        self.u32(bt).u32(total).bytes(body);
        self.0.resize(self.0.len() + pad - body.len(), 0);
        self.u32(total)
    }
}

/// A packet as libpcap reads it: seconds, nanoseconds, wire length, bytes.
type Pkt = (i64, i64, u32, Vec<u8>);

/// Packets of a file as libpcap reads them.
fn packets_of(path: &Path) -> (i32, Vec<Pkt>) {
    let mut c = Capture::from_file_with_precision(path, Precision::Nano).expect("libpcap open");
    let dlt = c.get_datalink().0;
    let mut v = Vec::new();
    while let Ok(p) = c.next_packet() {
        let h = p.header;
        v.push((h.ts.tv_sec, h.ts.tv_usec, h.len, p.data.to_vec()));
    }
    (dlt, v)
}

/// The same packets as a big-endian nanosecond pcap.
fn be_nano_pcap(linktype: u32, pkts: &[Pkt]) -> Vec<u8> {
    let mut w = Be(Vec::new());
    w.u32(0xa1b2_3c4d)
        .u16(2)
        .u16(4)
        .u32(0)
        .u32(0)
        .u32(65535)
        .u32(linktype);
    for (s, ns, len, d) in pkts {
        w.u32(*s as u32)
            .u32(*ns as u32)
            .u32(d.len() as u32)
            .u32(*len)
            .bytes(d);
    }
    w.0
}

/// The same packets as a big-endian pcapng: two sections, in each an interface with
/// nanosecond resolution and a -1000 s offset and one with 2^-20 s resolution, packets
/// alternating between them (Enhanced Packet Blocks, every third one an obsolete Packet
/// Block), an unknown block before each packet.
fn be_pcapng(linktype: u16, pkts: &[Pkt]) -> Vec<u8> {
    let mut w = Be(Vec::new());
    let half = pkts.len() / 2;
    for (sect, chunk) in [&pkts[..half], &pkts[half..]].into_iter().enumerate() {
        let mut shb = Be(Vec::new());
        shb.u32(0x1a2b_3c4d)
            .u16(1)
            .u16(0)
            .u32(u32::MAX)
            .u32(u32::MAX);
        w.block(0x0a0d_0d0a, &shb.0);
        let mut idb = Be(Vec::new());
        idb.u16(linktype).u16(0).u32(0);
        idb.u16(9).u16(1).bytes(&[9, 0, 0, 0]);
        idb.u16(14).u16(8).u32(u32::MAX).u32((-1000i32) as u32);
        idb.u16(0).u16(0);
        w.block(1, &idb.0);
        let mut idb = Be(Vec::new());
        idb.u16(linktype).u16(0).u32(0);
        idb.u16(9).u16(1).bytes(&[0x80 | 20, 0, 0, 0]);
        w.block(1, &idb.0);
        for (i, (s, ns, len, d)) in chunk.iter().enumerate() {
            w.block(0x0000_0bad, format!("section {sect} packet {i}").as_bytes());
            let iface = (i % 2) as u32;
            let t: u64 = if iface == 0 {
                (*s as u64 + 1000) * 1_000_000_000 + *ns as u64
            } else {
                ((*s as u64) << 20) | (((*ns as u64) << 20) / 1_000_000_000)
            };
            let mut b = Be(Vec::new());
            if i % 3 == 2 {
                b.u16(iface as u16).u16(0);
            } else {
                b.u32(iface);
            }
            b.u32((t >> 32) as u32)
                .u32(t as u32)
                .u32(d.len() as u32)
                .u32(*len)
                .bytes(d);
            w.block(if i % 3 == 2 { 2 } else { 6 }, &b.0);
        }
    }
    w.0
}

#[test]
fn native_and_mapped_readers_match_libpcap_on_big_endian_nanosecond_and_pcapng_rewrites() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus"));
    let tmp = common::scratch("reader");
    let mut t = Tally::default();
    let mut files = 0;
    for f in captures(dir) {
        let (dlt, pkts) = packets_of(&f);
        if pkts.len() < 2 || dlt == 12 {
            // DLT_RAW files are written as LINKTYPE_RAW; the others share the number.
            continue;
        }
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
        let a = tmp.join(format!("{stem}.be-ns.pcap"));
        std::fs::write(&a, be_nano_pcap(dlt as u32, &pkts)).expect("write");
        let b = tmp.join(format!("{stem}.be.pcapng"));
        std::fs::write(&b, be_pcapng(dlt as u16, &pkts)).expect("write");
        let before = t.packets;
        compare(&a, &mut t);
        assert_eq!(t.packets - before, pkts.len(), "{}", a.display());
        compare(&b, &mut t);
        assert_eq!(t.packets - before, 2 * pkts.len(), "{}", b.display());
        files += 2;
    }
    println!("{files} rewritten files, {} packets identical", t.packets);
    assert!(files >= 40, "{files} files");
    assert!(t.errors.is_empty(), "{:#?}", t.errors);
}

/// `analyze --reader R` on `pcaps`: the events (one JSON value per line) and stderr.
fn analyze_with(dir: &Path, reader: &str, pcaps: &[PathBuf]) -> (Vec<serde_json::Value>, String) {
    let out = dir.join(format!("events-{reader}.jsonl"));
    let o = common::bin()
        .args(["analyze", "--workers", "2", "--reader", reader, "--config"])
        .arg(dir.join("agent.toml"))
        .arg("--out")
        .arg(&out)
        .args(pcaps)
        .output()
        .expect("run crossline-agent");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "--reader {reader}: {err}");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let ev = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (ev, err)
}

#[test]
fn analyze_writes_the_same_events_with_any_reader() {
    let dir = common::config_dir("reader", "");
    let mut pcaps = captures(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/corpus"
    )));
    let shared = common::shared();
    if let Some(s) = &shared {
        // Cut short: read up to the cut by both, reported by both.
        pcaps.push(s.join("corpus/real/ndpi__fuzz-2021-10-13.pcap"));
        pcaps.push(s.join("corpus/real/ndpi__alexa-app.pcapng"));
    }
    let (native, _) = analyze_with(&dir, "native", &pcaps);
    let (libpcap, _) = analyze_with(&dir, "libpcap", &pcaps);
    let (mapped, _) = analyze_with(&dir, "mmap", &pcaps);
    let split = |ev: Vec<serde_json::Value>| {
        let (stats, rest): (Vec<_>, Vec<_>) = ev
            .into_iter()
            .partition(|e| e.get("stats").is_some_and(|s| !s.is_null()));
        (stats, rest)
    };
    let (ns, native) = split(native);
    let (ls, libpcap) = split(libpcap);
    let (ms, mapped) = split(mapped);
    assert!(native.len() > 100, "{} events", native.len());
    assert_eq!(native.len(), libpcap.len());
    for (i, (a, b)) in native.iter().zip(&libpcap).enumerate() {
        assert_eq!(a, b, "event {i} differs");
    }
    assert_eq!(native.len(), mapped.len(), "events with mmap");
    for (i, (a, b)) in native.iter().zip(&mapped).enumerate() {
        assert_eq!(a, b, "event {i} differs with mmap");
    }
    let counters = |s: &[serde_json::Value]| {
        let st = &s.last().expect("a stats event")["crossline"]["stats"];
        (
            st["packets"].clone(),
            st["bytes"].clone(),
            st["file_errors"].clone(),
        )
    };
    let (np, nb, nerr) = counters(&ns);
    let (lp, lb, lerr) = counters(&ls);
    let (mp, mb, merr) = counters(&ms);
    assert_eq!((&np, &nb), (&lp, &lb), "packet and byte counters");
    assert_eq!((&np, &nb, &nerr), (&mp, &mb, &merr), "counters with mmap");
    if shared.is_some() {
        for errs in [&nerr, &lerr, &merr] {
            let errs = errs.as_array().expect("file_errors");
            assert_eq!(errs.len(), 1, "{errs:?}");
            let e = errs[0].as_str().unwrap_or_default();
            assert!(e.contains("ndpi__fuzz-2021-10-13.pcap: "), "{e}");
            assert!(
                e.contains("truncated dump file; tried to read 16 header bytes, only got 2"),
                "{e}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unknown_reader_is_a_usage_error_naming_it() {
    let dir = common::config_dir("reader-bad", "");
    let o = common::bin()
        .args(["analyze", "--reader", "pcap-file", "--config"])
        .arg(dir.join("agent.toml"))
        .arg(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/corpus/tcpdump__dns_tcp.pcap"
        )))
        .output()
        .expect("run crossline-agent");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "a usage error: {err}");
    assert!(
        err.contains("\"pcap-file\"") && err.contains("mmap, native or libpcap"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A packet as the pipeline sees it: time, wire length, bytes.
type Seen = (i64, u32, Vec<u8>);

/// Every packet of `src` and its file errors.
fn drain(src: &mut NativeFiles) -> (Vec<Seen>, Vec<String>) {
    let mut v = Vec::new();
    loop {
        let st = src
            .read(64, &mut |p| {
                v.push((p.ts_micros, p.orig_len, p.data.to_vec()))
            })
            .expect("read");
        if st == Status::End {
            return (v, std::mem::take(&mut src.file_errors));
        }
    }
}

#[test]
fn the_mapped_reader_reads_a_fifo_with_read() {
    let corpus = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus"));
    let file = corpus.join("tcpdump__dns_tcp.pcap");
    let bytes = std::fs::read(&file).expect("read corpus file");
    let mut direct = NativeFiles::open_mapped(std::slice::from_ref(&file)).expect("open");
    assert_eq!(direct.mapped(), 1, "a regular file is mapped");
    let (want, errs) = drain(&mut direct);
    assert!(
        want.len() > 10 && errs.is_empty(),
        "{} {errs:?}",
        want.len()
    );

    let tmp = common::scratch("reader-fifo");
    let fifo = tmp.join("capture.pcap");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(st.success(), "mkfifo {}", fifo.display());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, bytes).expect("write the FIFO"))
    };
    let mut piped = NativeFiles::open_mapped(std::slice::from_ref(&fifo)).expect("open FIFO");
    assert_eq!(piped.mapped(), 0, "a FIFO is read with read()");
    assert_eq!(drain(&mut piped), (want, Vec::new()));
    writer.join().expect("writer");
}

#[test]
fn analyze_reads_a_piped_stdin_named_dev_stdin_or_dash() {
    use std::io::Write;
    let dir = common::config_dir("reader-stdin", "");
    let file = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/corpus/tcpdump__dns_tcp.pcap"
    ));
    let (want, _) = analyze_with(&dir, "native", &[file.to_path_buf()]);
    let flows = |ev: &[serde_json::Value]| {
        ev.iter()
            .filter(|e| e.get("stats").is_none_or(serde_json::Value::is_null))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(!flows(&want).is_empty());
    for (reader, path) in [("mmap", "/dev/stdin"), ("native", "-"), ("mmap", "-")] {
        let out = dir.join("events-stdin.jsonl");
        let mut child = common::bin()
            .args(["analyze", "--workers", "2", "--reader", reader, "--config"])
            .arg(dir.join("agent.toml"))
            .arg("--out")
            .arg(&out)
            .arg(path)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run crossline-agent");
        let bytes = std::fs::read(file).expect("read corpus file");
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let o = child.wait_with_output().expect("wait");
        writer.join().expect("writer").expect("write stdin");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{reader} {path}: {err}");
        let text = std::fs::read_to_string(&out).expect("events");
        let got: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        assert_eq!(
            flows(&got),
            flows(&want),
            "events from a piped stdin ({reader}, {path})"
        );
    }
}

/// `analyze` of a pipe whose writer pauses writes out, while it waits, every event the packets
/// so far complete (the flows that packet time has ended, their alerts), not only when another
/// 256 KiB of output or 64 packets have come: an enterprise piping a capture in sees its
/// alerts as the traffic comes. What it writes while waiting is the start of what a run over
/// the whole file writes, in the same order, and the same with one worker or two.
#[test]
fn analyze_of_a_pipe_that_pauses_writes_what_is_complete_while_it_waits() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let (config, demo) = (
        root.join("examples/agent.toml"),
        root.join("examples/demo.pcap"),
    );
    let tmp = common::scratch("reader-pause");
    let run = |workers: &str, input: &Path, out: &Path| {
        common::bin()
            .args(["analyze", "--workers", workers, "--config"])
            .arg(&config)
            .arg("--out")
            .arg(out)
            .arg(input)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run crossline-agent")
    };
    let lines = |p: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |i| &text[..=i]);
        whole.lines().map(str::to_string).collect()
    };
    let full = tmp.join("full.jsonl");
    let o = run("1", &demo, &full).wait_with_output().expect("wait");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = lines(&full);
    let alerts = |v: &[String]| {
        v.iter()
            .filter(|l| l.contains("\"event_type\":\"alert\""))
            .count()
    };

    let mut written = Vec::new();
    for workers in ["1", "2"] {
        let fifo = tmp.join(format!("capture-{workers}.pcap"));
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(st.success(), "mkfifo {}", fifo.display());
        let (close, closed) = std::sync::mpsc::channel::<()>();
        let writer = {
            let (fifo, bytes) = (fifo.clone(), std::fs::read(&demo).expect("read demo"));
            std::thread::spawn(move || {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&fifo)
                    .expect("open the FIFO");
                f.write_all(&bytes).expect("write the FIFO");
                // The capture pauses here, the FIFO still open: the agent waits for more.
                let _ = closed.recv_timeout(std::time::Duration::from_secs(120));
            })
        };
        let out = tmp.join(format!("paused-{workers}.jsonl"));
        let mut child = run(workers, &fifo, &out);
        // What the agent writes while the input waits: it settles once the packets are read.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut seen = (0, std::time::Instant::now());
        while std::time::Instant::now() < deadline {
            let n = lines(&out).len();
            if n != seen.0 {
                seen = (n, std::time::Instant::now());
            } else if n > 0 && seen.1.elapsed() > std::time::Duration::from_secs(2) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let waiting = lines(&out);
        let still_running = child.try_wait().expect("try_wait").is_none();
        let _ = close.send(());
        writer.join().expect("writer");
        let o = child.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(still_running, "the agent ended before the FIFO was closed");
        // Most of the run, both event kinds: every flow of the demo that ends before its last
        // minutes (by packet time), with its alerts.
        assert!(
            waiting.len() >= want.len() / 2 && alerts(&waiting) > 0,
            "{workers} worker(s): {} of {} lines ({} alerts) written while the input waited",
            waiting.len(),
            want.len(),
            alerts(&waiting)
        );
        assert_eq!(
            waiting[..],
            want[..waiting.len()],
            "{workers} worker(s): what was written while waiting is the start of the whole output"
        );
        assert_eq!(
            lines(&out),
            want,
            "{workers} worker(s): the same events in the end"
        );
        written.push(waiting.len());
    }
    assert_eq!(
        written[0], written[1],
        "as much written while waiting with one worker as with two"
    );
}
