use super::*;

/// Owned copy of what a packet says, to compare runs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    micros: i64,
    sec: i64,
    nsec: i64,
    len: u32,
    data: Vec<u8>,
    linktype: i32,
}

/// Every packet of `r`, and how it ended.
fn collect<S: Source>(r: Result<FileReader<S>, ReadError>) -> (Vec<Seen>, Option<ReadError>) {
    let mut r = match r {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    loop {
        match r.next_packet() {
            Ok(Some(p)) => out.push(Seen {
                micros: p.raw.ts_micros,
                sec: p.ts_sec,
                nsec: p.ts_nsec,
                len: p.raw.orig_len,
                data: p.raw.data.to_vec(),
                linktype: p.raw.linktype,
            }),
            Ok(None) => return (out, None),
            Err(e) => {
                // After an error the reader stays at its end.
                assert!(matches!(r.next_packet(), Ok(None)));
                return (out, Some(e));
            }
        }
    }
}

/// `bytes` read with `read()` in `chunk`-byte chunks; the in-memory source must give exactly
/// the same packets and end.
fn read_all(bytes: &[u8], chunk: usize) -> (Vec<Seen>, Option<ReadError>) {
    let chunked = collect(FileReader::with_chunk(bytes, chunk));
    let whole = collect(FileReader::from_bytes(bytes));
    assert_eq!(chunked, whole, "in-memory source differs from read()");
    chunked
}

/// `bytes` written to a temporary file and read through memory maps of `window` bytes.
fn read_mapped(bytes: &[u8], window: usize) -> (Vec<Seen>, Option<ReadError>) {
    let mut f = tempfile::tempfile().expect("temporary file");
    std::io::Write::write_all(&mut f, bytes).expect("write");
    collect(FileReader::mapped_with_window(f, window))
}

/// Field writer in either byte order.
struct W {
    be: bool,
    b: Vec<u8>,
}

impl W {
    fn new(be: bool) -> Self {
        W { be, b: Vec::new() }
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        let x = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.b.extend_from_slice(&x);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        let x = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.b.extend_from_slice(&x);
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        let x = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.b.extend_from_slice(&x);
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.b.extend_from_slice(v);
        self
    }
}

fn pcap(be: bool, magic: u32, linktype: u32, recs: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
    let mut w = W::new(be);
    w.u32(magic)
        .u16(2)
        .u16(4)
        .u32(0)
        .u32(0)
        .u32(65535)
        .u32(linktype);
    for (sec, frac, len, data) in recs {
        w.u32(*sec)
            .u32(*frac)
            .u32(data.len() as u32)
            .u32(*len)
            .bytes(data);
    }
    w.b
}

/// A pcapng block: type, body (padded to 4), lengths around it.
fn block(w: &mut W, bt: u32, body: &[u8]) {
    let pad = body.len().div_ceil(4) * 4;
    let total = 12 + pad as u32;
    w.u32(bt).u32(total).bytes(body);
    w.b.resize(w.b.len() + pad - body.len(), 0);
    w.u32(total);
}

fn shb(w: &mut W) {
    let mut b = W::new(w.be);
    b.u32(BYTE_ORDER_MAGIC).u16(1).u16(0).u64(u64::MAX);
    block(w, BT_SHB, &b.b);
}

fn idb(w: &mut W, linktype: u16, tsresol: Option<u8>, tsoffset: Option<i64>) {
    let mut b = W::new(w.be);
    b.u16(linktype).u16(0).u32(0);
    // An option the reader does not know, before the ones it does.
    b.u16(2).u16(3).bytes(b"eth\0");
    if let Some(r) = tsresol {
        b.u16(9).u16(1).bytes(&[r, 0, 0, 0]);
    }
    if let Some(o) = tsoffset {
        b.u16(14).u16(8).u64(o as u64);
    }
    b.u16(0).u16(0);
    block(w, BT_IDB, &b.b);
}

fn epb(w: &mut W, iface: u32, t: u64, len: u32, data: &[u8]) {
    let mut b = W::new(w.be);
    b.u32(iface)
        .u32((t >> 32) as u32)
        .u32(t as u32)
        .u32(data.len() as u32)
        .u32(len)
        .bytes(data);
    block(w, BT_EPB, &b.b);
}

const FRAME: &[u8] = b"0123456789abcdefghij";

#[test]
fn pcap_both_byte_orders_and_precisions() {
    for be in [false, true] {
        let micro = pcap(
            be,
            PCAP_MAGIC,
            1,
            &[
                (1_700_000_000, 123_456, 60, FRAME),
                (5, 999_999, 20, &FRAME[..3]),
            ],
        );
        let (p, e) = read_all(&micro, 64);
        assert_eq!(e, None);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].micros, 1_700_000_000_123_456);
        assert_eq!((p[0].sec, p[0].nsec), (1_700_000_000, 123_456_000));
        assert_eq!(p[0].len, 60);
        assert_eq!(p[0].data, FRAME);
        assert_eq!(p[0].linktype, 1);
        assert_eq!(p[1].data, &FRAME[..3]);
        assert_eq!(p[1].micros, 5_999_999);

        let nano = pcap(be, PCAP_MAGIC_NS, 101, &[(7, 123_456_789, 20, FRAME)]);
        let (p, e) = read_all(&nano, 4096);
        assert_eq!(e, None);
        assert_eq!(p[0].micros, 7_123_456);
        assert_eq!(p[0].nsec, 123_456_789);
        // LINKTYPE_RAW is handed out as DLT_RAW, as libpcap does.
        assert_eq!(p[0].linktype, 12);
    }
}

#[test]
fn every_chunk_size_gives_the_same_packets() {
    let recs: Vec<(u32, u32, u32, &[u8])> = (0..50u32)
        .map(|i| (i, i * 7, 100 + i, &FRAME[..(i as usize % FRAME.len())]))
        .collect();
    let file = pcap(false, PCAP_MAGIC, 1, &recs);
    let (want, e) = read_all(&file, 1 << 20);
    assert_eq!(e, None);
    assert_eq!(want.len(), 50);
    for chunk in [64, 65, 67, 100, 128, 333] {
        assert_eq!(
            read_all(&file, chunk),
            (want.clone(), None),
            "chunk {chunk}"
        );
    }
}

#[test]
fn pcap_cut_short_reads_up_to_the_cut_with_libpcaps_message() {
    let file = pcap(
        false,
        PCAP_MAGIC,
        1,
        &[(1, 0, 20, FRAME), (2, 0, 20, FRAME)],
    );
    let second = 24 + 16 + FRAME.len();
    // Cut in the second record's data.
    let (p, e) = read_all(&file[..file.len() - 5], 64);
    assert_eq!(p.len(), 1);
    let e = e.expect("an error");
    assert!(e.truncated);
    assert_eq!(e.offset, second as u64);
    assert_eq!(
        e.message,
        "truncated dump file; tried to read 20 captured bytes, only got 15"
    );
    // Cut in the second record's header.
    let (p, e) = read_all(&file[..second + 9], 64);
    assert_eq!(p.len(), 1);
    assert_eq!(
        e.expect("an error").message,
        "truncated dump file; tried to read 16 header bytes, only got 9"
    );
    // Cut exactly at a record boundary: a clean end.
    assert_eq!(read_all(&file[..second], 64).1, None);
}

#[test]
fn garbage_and_absurd_headers_are_errors_with_the_offset() {
    let (_, e) = read_all(b"GIF89a this is not a capture", 64);
    let e = e.expect("an error");
    assert_eq!(e.offset, 0);
    assert!(e.message.contains("unknown file format"), "{}", e.message);

    let (_, e) = read_all(&[0xd4, 0xc3, 0xb2], 64);
    assert!(e.is_some());

    // A caplen of 4 GiB: an error at that record, nothing allocated for it.
    let mut file = pcap(false, PCAP_MAGIC, 1, &[(1, 0, 20, FRAME)]);
    let at = file.len();
    let mut w = W::new(false);
    w.u32(1).u32(0).u32(u32::MAX).u32(u32::MAX);
    file.extend_from_slice(&w.b);
    let (p, e) = read_all(&file, 64);
    assert_eq!(p.len(), 1);
    let e = e.expect("an error");
    assert_eq!(e.offset, at as u64);
    assert!(e
        .message
        .contains("invalid packet capture length 4294967295"));
    assert!(!e.truncated);

    // A pcapng block claiming 1 GiB.
    let mut w = W::new(false);
    shb(&mut w);
    idb(&mut w, 1, None, None);
    let at = w.b.len();
    w.u32(BT_EPB).u32(1 << 30);
    let (_, e) = read_all(&w.b, 64);
    let e = e.expect("an error");
    assert_eq!(e.offset, at as u64);
    assert!(e.message.contains("pcapng block size 1073741824 > maximum"));
}

#[test]
fn over_snaplen_records_are_cut_to_the_snaplen_like_libpcap() {
    let mut file = pcap(false, PCAP_MAGIC, 1, &[]);
    file[16..20].copy_from_slice(&8u32.to_le_bytes());
    let mut w = W::new(false);
    w.u32(1).u32(2).u32(20).u32(20).bytes(FRAME);
    file.extend_from_slice(&w.b);
    let (p, e) = read_all(&file, 64);
    assert_eq!(e, None);
    assert_eq!(p[0].data, &FRAME[..8]);
    assert_eq!(p[0].len, 20);
}

#[test]
fn pcapng_interfaces_resolutions_offsets_and_sections() {
    for be in [false, true] {
        let mut w = W::new(be);
        shb(&mut w);
        idb(&mut w, 1, None, None);
        // Nanoseconds, and 2^-10 with an offset of 100 s.
        idb(&mut w, 1, Some(9), None);
        idb(&mut w, 1, Some(0x80 | 10), Some(100));
        // An unknown block in between is skipped.
        block(&mut w, 0x0bad, b"whatever");
        epb(&mut w, 0, 1_700_000_000_123_456, 60, FRAME);
        epb(&mut w, 1, 1_700_000_000_123_456_789, 60, FRAME);
        epb(&mut w, 2, 5 * 1024 + 512, 60, &FRAME[..4]);
        // Simple Packet Block: interface 0, no time stamp, captured = wire length.
        let mut b = W::new(be);
        b.u32(FRAME.len() as u32).bytes(FRAME);
        block(&mut w, BT_SPB, &b.b);
        // Obsolete Packet Block.
        let mut b = W::new(be);
        b.u16(1)
            .u16(0)
            .u32(0)
            .u32(3_000_000_000)
            .u32(4)
            .u32(40)
            .bytes(&FRAME[..4]);
        block(&mut w, BT_PB, &b.b);
        // A new section with its own interfaces.
        shb(&mut w);
        idb(&mut w, 1, Some(3), Some(-5));
        epb(&mut w, 0, 42_001, 10, &FRAME[..2]);
        let bytes = w.b;
        let (p, e) = read_all(&bytes, 96);
        assert_eq!(e, None);
        assert_eq!(p.len(), 6);
        assert_eq!(p[0].micros, 1_700_000_000_123_456);
        assert_eq!((p[1].sec, p[1].nsec), (1_700_000_000, 123_456_789));
        assert_eq!(p[1].micros, 1_700_000_000_123_456);
        assert_eq!((p[2].sec, p[2].nsec), (105, 500_000_000));
        assert_eq!(p[2].micros, 105_500_000);
        assert_eq!((p[3].micros, p[3].len, p[3].data.len()), (0, 20, 20));
        assert_eq!((p[4].sec, p[4].nsec), (3, 0));
        assert_eq!(p[4].len, 40);
        assert_eq!((p[5].sec, p[5].micros), (37, 37_001_000));
        assert_eq!(read_all(&bytes, 1 << 16), (p, None));
    }
}

#[test]
fn pcapng_packet_on_an_unknown_interface_is_an_error() {
    let mut w = W::new(false);
    shb(&mut w);
    idb(&mut w, 1, None, None);
    epb(&mut w, 0, 1, 20, FRAME);
    let at = w.b.len() as u64;
    epb(&mut w, 3, 1, 20, FRAME);
    let (p, e) = read_all(&w.b, 64);
    assert_eq!(p.len(), 1);
    let e = e.expect("an error");
    assert_eq!(e.offset, at);
    assert!(e.message.contains("interface 3"), "{}", e.message);
}

#[test]
fn pcapng_cut_short_and_bad_trailer() {
    let mut w = W::new(false);
    shb(&mut w);
    idb(&mut w, 1, None, None);
    epb(&mut w, 0, 1, 20, FRAME);
    let at = w.b.len();
    epb(&mut w, 0, 2, 20, FRAME);
    let bytes = w.b;
    let (p, e) = read_all(&bytes[..bytes.len() - 6], 64);
    assert_eq!(p.len(), 1);
    let e = e.expect("an error");
    assert!(e.truncated);
    assert_eq!(e.offset, at as u64);
    assert!(
        e.message.starts_with("truncated pcapng dump file"),
        "{}",
        e.message
    );
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 4] ^= 0x40;
    let (p, e) = read_all(&bad, 64);
    assert_eq!(p.len(), 1);
    assert!(e.expect("an error").message.contains("don't match"));
}

#[test]
fn no_panic_on_any_prefix_or_byte_flip() {
    let mut w = W::new(true);
    shb(&mut w);
    idb(&mut w, 1, Some(9), Some(-3));
    epb(&mut w, 0, 1_000_000_007, 20, FRAME);
    let ng = w.b;
    let pc = pcap(
        false,
        PCAP_MAGIC_NS,
        1,
        &[(1, 2, 20, FRAME), (3, 4, 5, FRAME)],
    );
    for file in [ng, pc] {
        for cut in 0..file.len() {
            let _ = read_all(&file[..cut], 64);
        }
        for i in 0..file.len() {
            for bit in 0..8 {
                let mut f = file.clone();
                f[i] ^= 1 << bit;
                let _ = read_all(&f, 64);
            }
        }
    }
}

/// Records of 1,000-1,400 bytes, so that many straddle a 4 KiB window.
fn big_records() -> Vec<(u32, u32, u32, Vec<u8>)> {
    (0..60u32)
        .map(|i| {
            let d: Vec<u8> = (0..1000 + (i * 37) % 400).map(|j| (i + j) as u8).collect();
            (i, i * 1000, 1500, d)
        })
        .collect()
}

#[test]
fn mapped_windows_give_the_same_packets_and_ends_as_read() {
    let recs = big_records();
    let refs: Vec<(u32, u32, u32, &[u8])> = recs
        .iter()
        .map(|(a, b, c, d)| (*a, *b, *c, &d[..]))
        .collect();
    let mut files = Vec::new();
    for be in [false, true] {
        files.push(pcap(be, PCAP_MAGIC_NS, 1, &refs));
        let mut w = W::new(be);
        shb(&mut w);
        idb(&mut w, 1, Some(9), Some(-7));
        for (i, (_, _, len, d)) in recs.iter().enumerate() {
            if i % 10 == 3 {
                block(&mut w, 0x0bad, &d[..100]);
            }
            epb(&mut w, 0, 1_000_000_007 * i as u64, *len, d);
            if i == 30 {
                shb(&mut w);
                idb(&mut w, 1, Some(0x80 | 20), None);
            }
        }
        files.push(w.b);
    }
    for file in &files {
        let want = read_all(file, 1 << 20);
        assert_eq!(want.0.len(), 60);
        assert_eq!(want.1, None);
        for window in [4096, 8192, 3 * 4096, 1 << 20] {
            assert_eq!(read_mapped(file, window), want, "window {window}");
        }
        // Cut short anywhere: the same packets, offset and message as read().
        for cut in [5, 23, 24, 30, 4095, 4096, 4100, 9000, file.len() - 1] {
            let short = &file[..cut];
            let want = read_all(short, 4096);
            assert_eq!(read_mapped(short, 4096), want, "cut at {cut}");
        }
    }
}

#[test]
fn a_mapped_file_that_grows_is_read_on_and_one_cut_ahead_ends_truncated() {
    let recs = big_records();
    let refs: Vec<(u32, u32, u32, &[u8])> = recs
        .iter()
        .map(|(a, b, c, d)| (*a, *b, *c, &d[..]))
        .collect();
    let file = pcap(false, PCAP_MAGIC, 1, &refs);
    let (all, _) = read_all(&file, 1 << 20);
    let tmp = tempfile::NamedTempFile::new().expect("temporary file");
    let half = 24 + (16 + 1000) * 3;
    std::fs::write(tmp.path(), &file[..half]).expect("write");
    let mut r = FileReader::mapped_with_window(tmp.reopen().expect("open"), 4096).expect("open");
    // The first packet maps the first window; the rest of the file is written after.
    let first = r
        .next_packet()
        .expect("read")
        .expect("a packet")
        .raw
        .data
        .to_vec();
    assert_eq!(first, all[0].data);
    std::fs::write(tmp.path(), &file).expect("write");
    let mut n = 1;
    while let Some(p) = r.next_packet().expect("read") {
        assert_eq!(p.raw.data, &all[n].data[..], "packet {n}");
        n += 1;
    }
    assert_eq!(n, 60, "the packets appended after the map are read too");

    // Cut well past the window being read: the reader meets the cut at a later window and
    // reports it as read() does.
    std::fs::write(tmp.path(), &file).expect("write");
    let mut r = FileReader::mapped_with_window(tmp.reopen().expect("open"), 4096).expect("open");
    assert!(r.next_packet().expect("read").is_some());
    let cut = 5 * 4096 + 100;
    std::fs::OpenOptions::new()
        .write(true)
        .open(tmp.path())
        .and_then(|f| f.set_len(cut as u64))
        .expect("truncate");
    let mut n = 1;
    let e = loop {
        match r.next_packet() {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("a clean end after {n} packets"),
            Err(e) => break e,
        }
    };
    let (want, want_e) = read_all(&file[..cut], 4096);
    assert_eq!(n, want.len());
    assert_eq!(Some(e), want_e);
}

/// The constant-divisor paths of the time split give what the general one gives, at the
/// ends and in between, for micro- and nanosecond interfaces.
#[test]
fn usual_resolutions_split_time_as_the_general_path() {
    let general = |t: u64, ifc: &Iface| {
        let frac = t % ifc.tsresol;
        (
            t / ifc.tsresol,
            scale(frac, ifc, 1_000_000),
            scale(frac, ifc, 1_000_000_000),
        )
    };
    let mut samples = vec![0, 1, 999, 1000, 999_999, 1_000_000, 1_000_000_001, u64::MAX];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        samples.push(x);
        samples.push(x % 10_000_000_000_000_000);
    }
    for tsresol in [1_000_000, 1_000_000_000] {
        let ifc = Iface {
            tsresol,
            binary: false,
            tsoffset: 0,
        };
        for &t in &samples {
            assert_eq!(split_time(t, &ifc), general(t, &ifc), "{t} at 1/{tsresol}");
        }
    }
}

/// A packet's bytes handed out in a shared read buffer stay as they were while a holder keeps
/// the buffer (a worker's batch), however far the reader reads on, with every chunk size; once
/// the holders let go, the reader reuses their buffers instead of allocating new ones.
#[test]
fn shared_read_buffers_are_never_written_while_held() {
    let recs: Vec<(u32, u32, u32, &[u8])> = (0..200u32)
        .map(|i| (i, i * 7, 100 + i, &FRAME[..(i as usize * 5 % FRAME.len())]))
        .collect();
    let file = pcap(false, PCAP_MAGIC, 1, &recs);
    let (want, e) = read_all(&file, 1 << 20);
    assert_eq!(e, None);
    for chunk in [64, 100, 333, 4096] {
        let mut r = FileReader::with_chunk(file.as_slice(), chunk).expect("header");
        // Every packet's buffer and offset, held until the end, as a batch would hold them.
        let mut held: Vec<(std::sync::Arc<Vec<u8>>, usize, usize)> = Vec::new();
        while let Some(p) = r.next_packet().expect("packet") {
            let at = p.raw.shared.expect("a chunked reader shares its buffer");
            let (start, len) = (at.offset, p.raw.data.len());
            assert_eq!(
                at.buf.get(start..start + len),
                Some(p.raw.data),
                "chunk {chunk}"
            );
            held.push((std::sync::Arc::clone(at.buf), start, len));
        }
        let got: Vec<&[u8]> = held.iter().map(|(b, s, l)| &b[*s..*s + *l]).collect();
        let expected: Vec<&[u8]> = want.iter().map(|s| s.data.as_slice()).collect();
        assert_eq!(got, expected, "chunk {chunk}: a held buffer was written");
    }
    // Released at once (one worker, or a batch already done): one buffer does for the file.
    let mut r = FileReader::with_chunk(file.as_slice(), 64).expect("header");
    let mut buffers = std::collections::HashSet::new();
    let mut last: Option<std::sync::Arc<Vec<u8>>> = None;
    while let Some(p) = r.next_packet().expect("packet") {
        let at = p.raw.shared.expect("shared");
        buffers.insert(std::sync::Arc::as_ptr(at.buf) as usize);
        // A holder that keeps only the last packet's buffer: at most two buffers take turns.
        last = Some(std::sync::Arc::clone(at.buf));
    }
    drop(last);
    assert!(
        buffers.len() <= 3,
        "{} buffers for one held at a time",
        buffers.len()
    );
}
