//! Pure-Rust reader for pcap and pcapng capture files.
//!
//! The parser ([`FileReader`]) works over a window of the file's bytes that a [`Source`]
//! provides: [`Chunks`] reads the file in chunks ([`CHUNK`], 256 KiB) into one reused buffer,
//! [`Mapped`] maps a regular file into memory a window ([`WINDOW`], 8 MiB) at a time, [`Bytes`]
//! reads bytes already in memory. Each packet is handed out as a slice of that window, valid
//! until the next call; with [`Mapped`] nothing is copied at all. Nothing is allocated per
//! packet: the read buffer only grows for a single record larger than the chunk, and a record
//! is bounded by the same limits libpcap applies (262144 captured bytes for the link types the
//! decoder knows, 16 MiB per pcapng block), so no header field can ask for a huge allocation
//! or mapping.
//!
//! The results follow libpcap 1.10 exactly on well-formed files (time stamps, captured and wire
//! lengths, link type as a DLT value, the snapshot-length cut of over-long pcap records, the
//! pcapng `if_tsresol` / `if_tsoffset` arithmetic) and on files cut short: packets up to the
//! cut, then the same "truncated dump file" message. Both byte orders are read; pcap with
//! micro- and nanosecond time stamps (and the old Kuznetzov variant); pcapng with several
//! sections and interfaces, Enhanced, Simple and the obsolete Packet blocks; every other block
//! type is skipped. Errors carry the byte offset of the record or block they concern. The
//! sources only move bytes, so every source gives the same packets, counters and errors.

use super::offline::OfflineFiles;
use super::{ts_micros, CaptureError, PacketSource, RawPacket, SharedAt, Status};
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

mod source;
pub use source::{Bytes, Chunks, Mapped, Source, WINDOW};

/// Default read chunk: small enough that the bytes one `read` copies in are still in the
/// CPU's L2 cache when the packets are parsed and copied on (reading the benchmark slice took
/// 112 ns per packet with 8 MiB chunks, 74-78 ns with 256 KiB, on a 512 KiB-L2 machine:
/// `examples/bench_capture.rs`), large enough that the system call stays rare (one per
/// ~1,500 packets of the benchmark capture).
pub const CHUNK: usize = 256 << 10;
/// Largest pcapng block accepted (libpcap's initial maximum).
pub const MAX_BLOCK: u32 = 16 << 20;
/// libpcap's maximum snapshot length for most link types.
const MAX_SNAPLEN: u32 = 262_144;

const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAP_MAGIC_KUZNETZOV: u32 = 0xa1b2_cd34;
const BT_SHB: u32 = 0x0a0d_0d0a;
const BT_IDB: u32 = 1;
const BT_PB: u32 = 2;
const BT_SPB: u32 = 3;
const BT_EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const SHB_INSANE_MAX: u32 = 1024 * 1024;

/// A read failure at a byte offset of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// Offset of the record or block the error concerns.
    pub offset: u64,
    /// What was wrong (libpcap's wording where libpcap has one).
    pub message: String,
    /// The file ended inside this record (read up to here; the packets before are good).
    pub truncated: bool,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at byte offset {})", self.message, self.offset)
    }
}

fn bad(offset: u64, message: String) -> ReadError {
    ReadError {
        offset,
        message,
        truncated: false,
    }
}

/// One packet: the agent's view (micro-second time) plus the nanosecond time libpcap gives
/// when asked for nanosecond precision.
#[derive(Debug, Clone, Copy)]
pub struct FilePacket<'a> {
    /// As the pipeline sees it.
    pub raw: RawPacket<'a>,
    /// Seconds, as libpcap's nanosecond-precision header.
    pub ts_sec: i64,
    /// Nanoseconds, as libpcap's nanosecond-precision header.
    pub ts_nsec: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LenSwap {
    No,
    Maybe,
    Yes,
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    tsresol: u64,
    binary: bool,
    tsoffset: i64,
}

#[derive(Debug)]
enum Format {
    Pcap {
        nano: bool,
        hdrsize: usize,
        lengths: LenSwap,
    },
    Ng {
        ifaces: Vec<Iface>,
        ifcount: usize,
    },
}

/// Reader of one capture file over any byte [`Source`].
#[derive(Debug)]
pub struct FileReader<S> {
    src: S,
    swapped: bool,
    fmt: Format,
    linktype: i32,
    snapshot: u32,
}

/// libpcap's `linktype_to_dlt` for the values whose DLT differs on Linux.
fn linktype_to_dlt(lt: u32) -> i32 {
    match lt {
        100 => 11,
        101 => 12,
        102 => 15,
        103 => 16,
        106 => 19,
        _ => lt as i32,
    }
}

/// libpcap's `max_snaplen_for_dlt`, with D-Bus capped to the chunk size.
fn max_snaplen(dlt: i32) -> u32 {
    match dlt {
        231 | 279 => 8 * 1024 * 1024,
        249 => 1024 * 1024,
        _ => MAX_SNAPLEN,
    }
}

fn adjust_snapshot(dlt: i32, snaplen: u32) -> u32 {
    if snaplen == 0 || snaplen > max_snaplen(dlt) {
        max_snaplen(dlt)
    } else {
        snaplen
    }
}

/// A pcapng time stamp `t` of interface `ifc` as whole units of its resolution and the rest
/// in micro- and nanoseconds ([`scale`]d as libpcap does). The two usual resolutions divide by
/// constants, which compile to multiplications: a division by a value known only at run time
/// costs tens of cycles, twice per packet.
#[inline]
fn split_time(t: u64, ifc: &Iface) -> (u64, u64, u64) {
    match (ifc.binary, ifc.tsresol) {
        (false, 1_000_000) => {
            let frac = t % 1_000_000;
            (t / 1_000_000, frac, frac.wrapping_mul(1000))
        }
        (false, 1_000_000_000) => {
            let frac = t % 1_000_000_000;
            (t / 1_000_000_000, frac / 1000, frac)
        }
        _ => {
            let frac = t % ifc.tsresol;
            (
                t / ifc.tsresol,
                scale(frac, ifc, 1_000_000),
                scale(frac, ifc, 1_000_000_000),
            )
        }
    }
}

/// Scale a fraction of `tsresol` units to `user` units, as libpcap does (wrapping).
fn scale(frac: u64, ifc: &Iface, user: u64) -> u64 {
    if ifc.tsresol == user {
        frac
    } else if ifc.binary {
        frac.wrapping_mul(user) / ifc.tsresol
    } else if ifc.tsresol > user {
        frac / (ifc.tsresol / user)
    } else {
        frac.wrapping_mul(user / ifc.tsresol)
    }
}

impl<R: Read> FileReader<Chunks<R>> {
    /// Read the file header (pcap) or the first section up to its first interface (pcapng),
    /// then the file [`CHUNK`] bytes at a time.
    pub fn new(src: R) -> Result<Self, ReadError> {
        Self::with_chunk(src, CHUNK)
    }

    /// [`FileReader::new`] with a read chunk of `chunk` bytes (at least 64).
    pub fn with_chunk(src: R, chunk: usize) -> Result<Self, ReadError> {
        FileReader::open(Chunks::new(src, chunk))
    }
}

impl<B: AsRef<[u8]>> FileReader<Bytes<B>> {
    /// Read a file already in memory.
    pub fn from_bytes(bytes: B) -> Result<Self, ReadError> {
        FileReader::open(Bytes::new(bytes))
    }
}

impl FileReader<Mapped> {
    /// Read a regular file through a memory map, [`WINDOW`] bytes mapped at a time. Fails
    /// for what cannot be mapped (not a regular file, refused by the kernel); see
    /// [`NativeFiles::open_mapped`] for the fallback to `read()`.
    pub fn mapped(file: File) -> Result<Self, ReadError> {
        Self::mapped_with_window(file, WINDOW)
    }

    /// [`FileReader::mapped`] with windows of `window` bytes (at least a page).
    pub fn mapped_with_window(file: File, window: usize) -> Result<Self, ReadError> {
        FileReader::open(Mapped::new(file, window))
    }
}

impl<R: Read + AsFd> FileReader<Chunks<R>> {
    /// [`FileReader::new`] that can tell when a pipe or FIFO runs dry without ending
    /// ([`FileReader::would_wait`]); `stalls` says `src` is one (not a regular file).
    pub fn watched(src: R, stalls: bool) -> Result<Self, ReadError> {
        FileReader::open(Chunks::watched(src, CHUNK, stalls))
    }
}

/// `u32` at `off` of `b`, little-endian (0 past the end: callers check lengths first).
#[inline]
fn le32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(&[x0, x1, x2, x3]) => u32::from_le_bytes([x0, x1, x2, x3]),
        _ => 0,
    }
}

impl<S: Source> FileReader<S> {
    /// Read the file header (pcap) or the first section up to its first interface (pcapng)
    /// from `src`.
    pub fn open(src: S) -> Result<Self, ReadError> {
        let mut r = FileReader {
            src,
            swapped: false,
            fmt: Format::Pcap {
                nano: false,
                hdrsize: 16,
                lengths: LenSwap::No,
            },
            linktype: 0,
            snapshot: 0,
        };
        let have = r.src.fill(4)?;
        if have < 4 {
            return Err(bad(0, format!("unknown file format ({have} bytes)")));
        }
        let m = r.u32_at(0, false);
        if m == BT_SHB {
            r.open_pcapng()?;
        } else {
            r.open_pcap(m)?;
        }
        r.src.opened();
        Ok(r)
    }

    /// Link type of the file as a DLT value (what libpcap's `pcap_datalink` returns).
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// Bytes of the file consumed so far.
    pub fn consumed(&self) -> u64 {
        self.src.consumed()
    }

    /// The next packet is not read yet and reading it now would wait for the writer of a pipe
    /// or FIFO that has not written it (always false for regular files). Said once per wait:
    /// the next [`FileReader::next_packet`] waits for it as usual.
    #[inline]
    pub fn would_wait(&mut self) -> bool {
        self.src.can_stall() && !self.record_buffered() && self.src.would_wait()
    }

    /// Whether the next record is whole in the window. May say no for one that is (then the
    /// source is only asked whether it would wait), never yes for one that is not.
    fn record_buffered(&self) -> bool {
        let have = self.src.window().len();
        let need = match self.fmt {
            Format::Pcap { hdrsize, .. } => {
                if have < hdrsize {
                    return false;
                }
                hdrsize + self.rd32(8).max(self.rd32(12)) as usize
            }
            Format::Ng { .. } => {
                if have < 8 {
                    return false;
                }
                self.rd32(4) as usize
            }
        };
        have >= need
    }

    /// `u32` at `off` past the read position, in file byte order if `swap`.
    fn u32_at(&self, off: usize, swap: bool) -> u32 {
        let v = le32(self.src.window(), off);
        if swap {
            v.swap_bytes()
        } else {
            v
        }
    }

    fn u16_at(&self, off: usize) -> u16 {
        let v = match self.src.window().get(off..off + 2) {
            Some(&[x0, x1]) => u16::from_le_bytes([x0, x1]),
            _ => 0,
        };
        if self.swapped {
            v.swap_bytes()
        } else {
            v
        }
    }

    fn rd32(&self, off: usize) -> u32 {
        self.u32_at(off, self.swapped)
    }

    fn open_pcap(&mut self, m: u32) -> Result<(), ReadError> {
        let (swapped, nano, hdrsize) = match m {
            PCAP_MAGIC => (false, false, 16),
            PCAP_MAGIC_NS => (false, true, 16),
            PCAP_MAGIC_KUZNETZOV => (false, false, 24),
            _ if m.swap_bytes() == PCAP_MAGIC => (true, false, 16),
            _ if m.swap_bytes() == PCAP_MAGIC_NS => (true, true, 16),
            _ if m.swap_bytes() == PCAP_MAGIC_KUZNETZOV => (true, false, 24),
            _ => {
                return Err(bad(
                    0,
                    format!(
                        "unknown file format (magic 0x{m:08x}, expected a pcap or pcapng magic)"
                    ),
                ))
            }
        };
        self.swapped = swapped;
        let have = self.src.fill(24)?;
        if have < 24 {
            return Err(ReadError {
                offset: 0,
                message: format!(
                    "truncated dump file; tried to read 24 file header bytes, only got {have}"
                ),
                truncated: true,
            });
        }
        let major = self.u16_at(4);
        let minor = self.u16_at(6);
        if major < 2 {
            return Err(bad(4, "archaic pcap savefile format".into()));
        }
        let lengths = match (major, minor) {
            (2, 0..=2) => LenSwap::Yes,
            (2, 3) => LenSwap::Maybe,
            (2, 4) => LenSwap::No,
            (543, 0) => LenSwap::Yes,
            _ => {
                return Err(bad(
                    4,
                    format!("unsupported pcap savefile version {major}.{minor}"),
                ))
            }
        };
        let snaplen = self.rd32(16);
        self.linktype = linktype_to_dlt(self.rd32(20) & 0x03ff_ffff);
        self.snapshot = adjust_snapshot(self.linktype, snaplen);
        self.fmt = Format::Pcap {
            nano,
            hdrsize,
            lengths,
        };
        self.src.skip(24);
        Ok(())
    }

    /// Read one whole pcapng block at the read position; `Ok(None)` at a clean end. Returns
    /// (block type, total length); the read position stays at the block start.
    fn block(&mut self, max: u32) -> Result<Option<(u32, usize)>, ReadError> {
        let off = self.src.consumed();
        let have = self.src.fill(8)?;
        if have == 0 {
            return Ok(None);
        }
        if have < 8 {
            return Err(ReadError {
                offset: off,
                message: format!(
                    "truncated pcapng dump file; tried to read 8 bytes, only got {have}"
                ),
                truncated: true,
            });
        }
        let bt = self.rd32(0);
        let len = self.rd32(4);
        if len < 12 {
            return Err(bad(
                off,
                format!("block in pcapng dump file has a length of {len} < 12"),
            ));
        }
        if !len.is_multiple_of(4) {
            return Err(bad(
                off,
                format!(
                    "block in pcapng dump file has a length of {len} that is not a multiple of 4"
                ),
            ));
        }
        if len > max {
            return Err(bad(off, format!("pcapng block size {len} > maximum {max}")));
        }
        let n = len as usize;
        let have = self.src.fill(n)?;
        if have < n {
            return Err(ReadError {
                offset: off,
                message: format!(
                    "truncated pcapng dump file; tried to read {} bytes, only got {}",
                    n - 8,
                    have - 8
                ),
                truncated: true,
            });
        }
        let trailer = self.rd32(n - 4);
        if trailer != len {
            return Err(bad(
                off,
                format!("block total length in header {len} and trailer {trailer} don't match"),
            ));
        }
        Ok(Some((bt, n)))
    }

    fn open_pcapng(&mut self) -> Result<(), ReadError> {
        let have = self.src.fill(12)?;
        if have < 12 {
            return Err(bad(0, "unknown file format (short pcapng header)".into()));
        }
        let bom = self.u32_at(8, false);
        if bom == BYTE_ORDER_MAGIC {
            self.swapped = false;
        } else if bom.swap_bytes() == BYTE_ORDER_MAGIC {
            self.swapped = true;
        } else {
            return Err(bad(
                8,
                format!("unknown file format (pcapng byte-order magic 0x{bom:08x})"),
            ));
        }
        let len = self.rd32(4);
        if !(28..=SHB_INSANE_MAX).contains(&len) {
            return Err(bad(
                0,
                format!("Section Header Block in pcapng dump file has invalid length {len} (expected 28 to {SHB_INSANE_MAX})"),
            ));
        }
        let Some((_, n)) = self.block(SHB_INSANE_MAX)? else {
            return Err(bad(0, "unknown file format".into()));
        };
        let (major, minor) = (self.u16_at(12), self.u16_at(14));
        if !(major == 1 && (minor == 0 || minor == 2)) {
            return Err(bad(
                12,
                format!("unsupported pcapng savefile version {major}.{minor}"),
            ));
        }
        self.src.skip(n);
        self.fmt = Format::Ng {
            ifaces: Vec::new(),
            ifcount: 0,
        };
        loop {
            let off = self.src.consumed();
            let Some((bt, n)) = self.block(MAX_BLOCK)? else {
                return Err(bad(
                    off,
                    "the capture file has no Interface Description Blocks".into(),
                ));
            };
            match bt {
                BT_IDB => {
                    if n < 20 {
                        return Err(too_short(off, bt));
                    }
                    let lt = u32::from(self.u16_at(8));
                    let snaplen = self.rd32(12);
                    self.linktype = linktype_to_dlt(lt);
                    self.snapshot = adjust_snapshot(self.linktype, snaplen);
                    self.add_interface(off, n)?;
                    self.src.skip(n);
                    return Ok(());
                }
                BT_EPB | BT_SPB | BT_PB => return Err(bad(
                    off,
                    "the capture file has a packet block before any Interface Description Blocks"
                        .into(),
                )),
                _ => self.src.skip(n),
            }
        }
    }

    /// Parse the options of the IDB at the read position (`n` bytes long) and add it.
    fn add_interface(&mut self, off: u64, n: usize) -> Result<(), ReadError> {
        let mut tsresol = 1_000_000u64;
        let mut binary = false;
        let mut tsoffset = 0i64;
        let (mut saw_res, mut saw_off) = (false, false);
        let mut o = 16;
        let end = n - 4;
        while o < end {
            if end - o < 4 {
                return Err(too_short(off, BT_IDB));
            }
            let code = self.u16_at(o);
            let olen = usize::from(self.u16_at(o + 2));
            let padded = olen.div_ceil(4) * 4;
            if end - o - 4 < padded {
                return Err(too_short(off, BT_IDB));
            }
            let v = o + 4;
            match code {
                0 => {
                    if olen != 0 {
                        return Err(bad(off, format!("Interface Description Block has opt_endofopt option with length {olen} != 0")));
                    }
                    break;
                }
                9 => {
                    if olen != 1 {
                        return Err(bad(off, format!("Interface Description Block has if_tsresol option with length {olen} != 1")));
                    }
                    if saw_res {
                        return Err(bad(
                            off,
                            "Interface Description Block has more than one if_tsresol option"
                                .into(),
                        ));
                    }
                    saw_res = true;
                    let r = self.src.window().get(v).copied().unwrap_or(0);
                    if r & 0x80 != 0 {
                        let shift = u32::from(r & 0x7f);
                        if shift > 63 {
                            return Err(bad(off, format!("Interface Description Block if_tsresol option resolution 2^-{shift} is too high")));
                        }
                        binary = true;
                        tsresol = 1u64 << shift;
                    } else {
                        if r > 19 {
                            return Err(bad(off, format!("Interface Description Block if_tsresol option resolution 10^-{r} is too high")));
                        }
                        binary = false;
                        tsresol = 10u64.pow(u32::from(r));
                    }
                }
                14 => {
                    if olen != 8 {
                        return Err(bad(off, format!("Interface Description Block has if_tsoffset option with length {olen} != 8")));
                    }
                    if saw_off {
                        return Err(bad(
                            off,
                            "Interface Description Block has more than one if_tsoffset option"
                                .into(),
                        ));
                    }
                    saw_off = true;
                    let lo = u64::from(le32(self.src.window(), v));
                    let hi = u64::from(le32(self.src.window(), v + 4));
                    let raw = lo | hi << 32;
                    tsoffset = if self.swapped { raw.swap_bytes() } else { raw } as i64;
                }
                _ => {}
            }
            o += 4 + padded;
        }
        let ifc = Iface {
            tsresol,
            binary,
            tsoffset,
        };
        if let Format::Ng { ifaces, ifcount } = &mut self.fmt {
            if *ifcount < ifaces.len() {
                ifaces[*ifcount] = ifc;
            } else {
                ifaces.push(ifc);
            }
            *ifcount += 1;
        }
        Ok(())
    }

    /// The next packet, `Ok(None)` at the end of the file. After an error the reader is done
    /// (further calls return the end).
    pub fn next_packet(&mut self) -> Result<Option<FilePacket<'_>>, ReadError> {
        let r = match self.fmt {
            Format::Pcap {
                nano,
                hdrsize,
                lengths,
            } => self.next_pcap(nano, hdrsize, lengths),
            Format::Ng { .. } => self.next_ng(),
        };
        match r {
            Ok(Some(p)) => {
                let linktype = self.linktype;
                let (rec, at) = self.src.take_shared(p.rec);
                let data = rec.get(p.data..p.data + p.caplen as usize).unwrap_or(&[]);
                Ok(Some(FilePacket {
                    raw: RawPacket {
                        ts_micros: ts_micros(p.sec, p.usec),
                        orig_len: p.len,
                        data,
                        linktype,
                        shared: at.map(|(buf, start)| SharedAt {
                            buf,
                            offset: start + p.data,
                        }),
                    },
                    ts_sec: p.sec,
                    ts_nsec: p.nsec,
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.src.finish();
                Err(e)
            }
        }
    }

    fn next_pcap(
        &mut self,
        nano: bool,
        hdrsize: usize,
        lengths: LenSwap,
    ) -> Result<Option<Found>, ReadError> {
        let off = self.src.consumed();
        let have = self.src.fill(hdrsize)?;
        if have == 0 {
            return Ok(None);
        }
        if have < hdrsize {
            return Err(ReadError {
                offset: off,
                message: format!(
                    "truncated dump file; tried to read {hdrsize} header bytes, only got {have}"
                ),
                truncated: true,
            });
        }
        // One bounds check for the four fields (Kuznetzov's 24-byte header starts the same).
        let Some(h) = self.src.window().first_chunk::<16>() else {
            return Ok(None);
        };
        let field = |i: usize| {
            let v = u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
            if self.swapped {
                v.swap_bytes()
            } else {
                v
            }
        };
        let sec = i64::from(field(0) as i32);
        let frac = i64::from(field(4) as i32);
        let mut caplen = field(8);
        let mut len = field(12);
        if lengths == LenSwap::Yes || (lengths == LenSwap::Maybe && caplen > len) {
            std::mem::swap(&mut caplen, &mut len);
        }
        let max = max_snaplen(self.linktype);
        if caplen > max {
            let msg = if caplen > self.snapshot {
                format!(
                    "invalid packet capture length {caplen}, bigger than snaplen of {}",
                    self.snapshot
                )
            } else {
                format!("invalid packet capture length {caplen}, bigger than maximum of {max}")
            };
            return Err(bad(off, msg));
        }
        let total = hdrsize + caplen as usize;
        let have = self.src.fill(total)? - hdrsize;
        if have < caplen as usize {
            // libpcap reads up to the snapshot length, then discards the rest.
            let want = if have < self.snapshot as usize {
                caplen.min(self.snapshot)
            } else {
                caplen
            };
            return Err(ReadError {
                offset: off,
                message: format!(
                    "truncated dump file; tried to read {want} captured bytes, only got {have}"
                ),
                truncated: true,
            });
        }
        let (usec, nsec) = if nano {
            (frac / 1000, frac)
        } else {
            (frac, frac * 1000)
        };
        Ok(Some(Found {
            sec,
            usec,
            nsec,
            caplen: caplen.min(self.snapshot),
            len,
            data: hdrsize,
            rec: total,
        }))
    }

    fn next_ng(&mut self) -> Result<Option<Found>, ReadError> {
        loop {
            let off = self.src.consumed();
            let Some((bt, n)) = self.block(MAX_BLOCK)? else {
                return Ok(None);
            };
            let body = n - 12;
            let (iface, caplen, len, t, data) = match bt {
                BT_EPB => {
                    if body < 20 {
                        return Err(too_short(off, bt));
                    }
                    let t = u64::from(self.rd32(12)) << 32 | u64::from(self.rd32(16));
                    (self.rd32(8), self.rd32(20), self.rd32(24), t, 28)
                }
                BT_PB => {
                    if body < 20 {
                        return Err(too_short(off, bt));
                    }
                    let t = u64::from(self.rd32(12)) << 32 | u64::from(self.rd32(16));
                    let id = u32::from(self.u16_at(8));
                    (id, self.rd32(20), self.rd32(24), t, 28)
                }
                BT_SPB => {
                    if body < 4 {
                        return Err(too_short(off, bt));
                    }
                    let len = self.rd32(8);
                    (0, len.min(self.snapshot), len, 0, 12)
                }
                BT_IDB => {
                    self.next_idb(off, n)?;
                    self.src.skip(n);
                    continue;
                }
                BT_SHB => {
                    self.next_shb(off, n)?;
                    self.src.skip(n);
                    continue;
                }
                _ => {
                    self.src.skip(n);
                    continue;
                }
            };
            let Format::Ng { ifaces, ifcount } = &self.fmt else {
                return Ok(None);
            };
            if iface as usize >= *ifcount {
                return Err(bad(off, format!("a packet arrived on interface {iface}, but there's no Interface Description Block for that interface")));
            }
            if caplen > self.snapshot {
                return Err(bad(
                    off,
                    format!(
                        "invalid packet capture length {caplen}, bigger than snaplen of {}",
                        self.snapshot
                    ),
                ));
            }
            if (caplen as usize) > n - 4 - data {
                return Err(too_short(off, bt));
            }
            let ifc = ifaces[iface as usize];
            let (whole, micros, nanos) = split_time(t, &ifc);
            let sec = whole.wrapping_add(ifc.tsoffset as u64) as i64;
            let usec = i64::from(micros as i32);
            let nsec = i64::from(nanos as i32);
            return Ok(Some(Found {
                sec,
                usec,
                nsec,
                caplen,
                len,
                data,
                rec: n,
            }));
        }
    }

    fn next_idb(&mut self, off: u64, n: usize) -> Result<(), ReadError> {
        if n < 20 {
            return Err(too_short(off, BT_IDB));
        }
        let lt = u32::from(self.u16_at(8));
        let snaplen = self.rd32(12);
        // libpcap compares the first interface's DLT with this one's LINKTYPE value.
        if self.linktype != lt as i32 {
            return Err(bad(
                off,
                format!(
                    "an interface has a type {lt} different from the type of the first interface"
                ),
            ));
        }
        if self.snapshot != adjust_snapshot(self.linktype, snaplen) {
            return Err(bad(off, format!("an interface has a snapshot length {snaplen} different from the snapshot length of the first interface")));
        }
        self.add_interface(off, n)
    }

    fn next_shb(&mut self, off: u64, n: usize) -> Result<(), ReadError> {
        if n < 28 {
            return Err(too_short(off, BT_SHB));
        }
        let bom = self.rd32(8);
        if bom != BYTE_ORDER_MAGIC {
            let m = if bom.swap_bytes() == BYTE_ORDER_MAGIC {
                "the file has sections with different byte orders"
            } else {
                "the file has a section with a bad byte order magic field"
            };
            return Err(bad(off, m.into()));
        }
        let major = self.u16_at(12);
        if major != 1 {
            return Err(bad(
                off,
                format!("unknown pcapng savefile major version number {major}"),
            ));
        }
        if let Format::Ng { ifcount, .. } = &mut self.fmt {
            *ifcount = 0;
        }
        Ok(())
    }
}

fn too_short(off: u64, bt: u32) -> ReadError {
    bad(
        off,
        format!("block of type {bt} in pcapng dump file is too short"),
    )
}

/// Header fields of a found packet, whose record (`rec` bytes, packet data from `data` on)
/// starts at the read position.
#[derive(Debug, Clone, Copy)]
struct Found {
    sec: i64,
    usec: i64,
    nsec: i64,
    caplen: u32,
    len: u32,
    data: usize,
    rec: usize,
}

/// One open file of [`NativeFiles`]: mapped, or read with `read()`.
#[derive(Debug)]
enum Open {
    Read(FileReader<Chunks<File>>),
    Mapped(FileReader<Mapped>),
}

impl Open {
    fn consumed(&self) -> u64 {
        match self {
            Open::Read(r) => r.consumed(),
            Open::Mapped(r) => r.consumed(),
        }
    }
}

/// How one file ended in [`drain`].
enum Drained {
    /// `max` packets handed out, the file has more.
    Full,
    /// The end of the file.
    End,
    /// The file cannot be read further.
    Failed(ReadError),
    /// A pipe or FIFO ran dry: its writer has not written the next packet yet.
    Stalled,
}

/// Hand up to `max - *n` packets of `r` to `f`, counting them in `n`. Generic so that each
/// source's parser is inlined into its own loop (no per-packet dispatch on the source).
#[inline]
fn drain<S: Source>(
    r: &mut FileReader<S>,
    n: &mut usize,
    max: usize,
    f: &mut dyn FnMut(RawPacket<'_>),
) -> Drained {
    while *n < max {
        if r.would_wait() {
            return Drained::Stalled;
        }
        match r.next_packet() {
            Ok(Some(p)) => {
                f(p.raw);
                *n += 1;
            }
            Ok(None) => return Drained::End,
            Err(e) => return Drained::Failed(e),
        }
    }
    Drained::Full
}

/// A sequence of capture files read as one stream by [`FileReader`].
///
/// Every file is opened up front so an unreadable or malformed file is reported before any
/// work starts. A file that ends in the middle of a record, or has a damaged record, is read up
/// to that record; the error is recorded in [`NativeFiles::file_errors`] and reading continues
/// with the next file.
pub struct NativeFiles {
    files: Vec<(PathBuf, Option<Open>, u64)>,
    current: usize,
    /// Files that could not be read completely, as `"FILE: message"`.
    pub file_errors: Vec<String>,
    /// Bytes of the files consumed so far.
    pub bytes_read: u64,
    /// Sum of the file sizes.
    pub total_bytes: u64,
}

impl std::fmt::Debug for NativeFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeFiles")
            .field("files", &self.files.len())
            .field("mapped", &self.mapped())
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// Open one file with the native reader (`read()` in chunks); errors name the file. A pipe,
/// FIFO or standard input from one says when it runs dry ([`Status::Stalled`]).
pub fn open_file(p: &Path) -> Result<FileReader<Chunks<File>>, CaptureError> {
    let (f, m) = open_regular(p)?;
    FileReader::watched(f, !m.is_file()).map_err(|e| open_error(p, e.to_string()))
}

fn open_error(p: &Path, message: String) -> CaptureError {
    CaptureError::Open {
        path: p.display().to_string(),
        message,
    }
}

/// Open `p` for reading (not a directory); the file and its metadata. `-` is standard input,
/// as libpcap reads it.
fn open_regular(p: &Path) -> Result<(File, std::fs::Metadata), CaptureError> {
    let p = if p.as_os_str() == "-" {
        Path::new("/dev/stdin")
    } else {
        p
    };
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => return Err(open_error(p, "is a directory".into())),
        Ok(_) => {}
        Err(e) => return Err(open_error(p, e.to_string())),
    }
    let f = File::open(p).map_err(|e| open_error(p, e.to_string()))?;
    // The metadata of what was opened (a path can be swapped between the two calls).
    let m = f.metadata().map_err(|e| open_error(p, e.to_string()))?;
    Ok((f, m))
}

/// Open one file mapped into memory when it is a non-empty regular file the kernel maps,
/// else with `read()` (pipes, FIFOs, `/dev/stdin`, character devices, empty files, file
/// systems without mmap). Errors name the file.
fn open_mapped(p: &Path) -> Result<Open, CaptureError> {
    let (f, m) = open_regular(p)?;
    let probe = if m.is_file() && m.len() > 0 {
        let len = usize::try_from(m.len().min(4096)).unwrap_or(4096);
        super::mapped::map_read_only(&f, 0, len).is_ok()
    } else {
        false
    };
    let err = |e: ReadError| open_error(p, e.to_string());
    if probe {
        FileReader::mapped(f).map(Open::Mapped).map_err(err)
    } else {
        FileReader::watched(f, !m.is_file())
            .map(Open::Read)
            .map_err(err)
    }
}

impl NativeFiles {
    /// Open every file, read with `read()`; the first one that cannot be opened or has a bad
    /// header is an error naming it.
    pub fn open(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        Self::open_with(paths, false)
    }

    /// [`NativeFiles::open`], mapping every file that can be mapped ([`Mapped`]) and reading
    /// the others with `read()`.
    pub fn open_mapped(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        Self::open_with(paths, true)
    }

    fn open_with(paths: &[PathBuf], map: bool) -> Result<Self, CaptureError> {
        let mut files = Vec::with_capacity(paths.len());
        let mut total = 0;
        for p in paths {
            let r = if map {
                open_mapped(p)?
            } else {
                Open::Read(open_file(p)?)
            };
            let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            total += size;
            files.push((p.clone(), Some(r), size));
        }
        Ok(NativeFiles {
            files,
            current: 0,
            file_errors: Vec::new(),
            bytes_read: 0,
            total_bytes: total,
        })
    }

    /// How many of the files not yet finished are read through a memory map.
    pub fn mapped(&self) -> usize {
        self.files
            .iter()
            .filter(|f| matches!(f.1, Some(Open::Mapped(_))))
            .count()
    }
}

impl PacketSource for NativeFiles {
    fn read(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RawPacket<'_>),
    ) -> Result<Status, CaptureError> {
        let mut n = 0;
        let mut stalled = false;
        let mut done: u64 = self.files.iter().take(self.current).map(|f| f.2).sum();
        while n < max && !stalled {
            let Some(entry) = self.files.get_mut(self.current) else {
                break;
            };
            let end = match entry.1.as_mut() {
                None => Drained::End,
                Some(Open::Read(r)) => drain(r, &mut n, max, f),
                Some(Open::Mapped(r)) => drain(r, &mut n, max, f),
            };
            match end {
                Drained::Full => {}
                Drained::Stalled => stalled = true,
                Drained::End => {
                    entry.1 = None;
                    done += entry.2;
                    self.current += 1;
                }
                Drained::Failed(e) => {
                    self.file_errors.push(format!("{}: {e}", entry.0.display()));
                    entry.1 = None;
                    done += entry.2;
                    self.current += 1;
                }
            }
        }
        let cur = self
            .files
            .get(self.current)
            .and_then(|e| e.1.as_ref())
            .map_or(0, Open::consumed);
        self.bytes_read = done + cur;
        Ok(if stalled {
            Status::Stalled(n)
        } else if n > 0 {
            Status::Packets(n)
        } else {
            Status::End
        })
    }
}

/// Which reader offline runs use for capture files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OfflineReader {
    /// [`NativeFiles`] reading with `read()` (the default): a few per cent slower than
    /// [`OfflineReader::Mmap`] on the benchmark capture (`bench/README.md`), but a file cut
    /// short while it is read is a clean error, never a `SIGBUS`.
    #[default]
    Native = 0,
    /// libpcap ([`OfflineFiles`]); also used whenever `capture.filter` is set, as the native
    /// reader has no BPF engine.
    Libpcap = 1,
    /// [`NativeFiles`] over memory-mapped files ([`Mapped`]; `read()` for what cannot be
    /// mapped).
    Mmap = 2,
}

impl std::str::FromStr for OfflineReader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mmap" => Ok(OfflineReader::Mmap),
            "native" => Ok(OfflineReader::Native),
            "libpcap" => Ok(OfflineReader::Libpcap),
            _ => Err(format!(
                "unknown reader {s:?}, expected mmap, native or libpcap"
            )),
        }
    }
}

static READER: AtomicU8 = AtomicU8::new(OfflineReader::Native as u8);

/// Choose the reader of later offline runs in this process (`analyze --reader`).
pub fn set_offline_reader(r: OfflineReader) {
    READER.store(r as u8, Ordering::Relaxed);
}

/// The reader offline runs use (see [`set_offline_reader`]).
pub fn offline_reader() -> OfflineReader {
    match READER.load(Ordering::Relaxed) {
        1 => OfflineReader::Libpcap,
        2 => OfflineReader::Mmap,
        _ => OfflineReader::Native,
    }
}

/// The capture files of an offline run, read by one of the readers.
#[derive(Debug)]
pub enum OfflineInput {
    /// libpcap.
    Libpcap(OfflineFiles),
    /// The native reader, with `read()` or over memory maps.
    Native(NativeFiles),
}

impl OfflineInput {
    /// Open every file with `reader` (libpcap whenever a `filter` is given).
    pub fn open(
        paths: &[PathBuf],
        filter: Option<&str>,
        reader: OfflineReader,
    ) -> Result<Self, CaptureError> {
        if filter.is_some() || reader == OfflineReader::Libpcap {
            OfflineFiles::open(paths, filter).map(OfflineInput::Libpcap)
        } else if reader == OfflineReader::Mmap {
            NativeFiles::open_mapped(paths).map(OfflineInput::Native)
        } else {
            NativeFiles::open(paths).map(OfflineInput::Native)
        }
    }

    /// Bytes of the files consumed so far.
    pub fn bytes_read(&self) -> u64 {
        match self {
            OfflineInput::Libpcap(s) => s.bytes_read,
            OfflineInput::Native(s) => s.bytes_read,
        }
    }

    /// Sum of the file sizes.
    pub fn total_bytes(&self) -> u64 {
        match self {
            OfflineInput::Libpcap(s) => s.total_bytes,
            OfflineInput::Native(s) => s.total_bytes,
        }
    }

    /// The files not read completely so far, as `"FILE: message"`, taken out.
    pub fn take_file_errors(&mut self) -> Vec<String> {
        match self {
            OfflineInput::Libpcap(s) => std::mem::take(&mut s.file_errors),
            OfflineInput::Native(s) => std::mem::take(&mut s.file_errors),
        }
    }
}

impl PacketSource for OfflineInput {
    fn read(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RawPacket<'_>),
    ) -> Result<Status, CaptureError> {
        match self {
            OfflineInput::Libpcap(s) => s.read(max, f),
            OfflineInput::Native(s) => s.read(max, f),
        }
    }
}

#[cfg(test)]
mod tests;
