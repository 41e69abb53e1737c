//! Pure-Rust reader for pcap and pcapng capture files.
//!
//! The file is read in large chunks (8 MiB by default) into one reused buffer; each packet is
//! handed out as a slice of that buffer, valid until the next call. Nothing is allocated per
//! packet: the buffer only grows for a single record larger than the chunk, and a record is
//! bounded by the same limits libpcap applies (262144 captured bytes for the link types the
//! decoder knows, 16 MiB per pcapng block), so no header field can ask for a huge allocation.
//!
//! The results follow libpcap 1.10 exactly on well-formed files (time stamps, captured and wire
//! lengths, link type as a DLT value, the snapshot-length cut of over-long pcap records, the
//! pcapng `if_tsresol` / `if_tsoffset` arithmetic) and on files cut short: packets up to the
//! cut, then the same "truncated dump file" message. Both byte orders are read; pcap with
//! micro- and nanosecond time stamps (and the old Kuznetzov variant); pcapng with several
//! sections and interfaces, Enhanced, Simple and the obsolete Packet blocks; every other block
//! type is skipped. Errors carry the byte offset of the record or block they concern.

use super::offline::OfflineFiles;
use super::{ts_micros, CaptureError, PacketSource, RawPacket, Status};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

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

/// Reader over any byte source (a file, or a slice in tests and fuzzing).
#[derive(Debug)]
pub struct FileReader<R> {
    src: R,
    buf: Vec<u8>,
    /// Read size once the header is parsed (`buf` stays small until then, so files opened up
    /// front cost little memory before they are read).
    chunk: usize,
    opened: bool,
    pos: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
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

impl<R: Read> FileReader<R> {
    /// Read the file header (pcap) or the first section up to its first interface (pcapng).
    pub fn new(src: R) -> Result<Self, ReadError> {
        Self::with_chunk(src, CHUNK)
    }

    /// [`FileReader::new`] with a read chunk of `chunk` bytes (at least 64).
    pub fn with_chunk(src: R, chunk: usize) -> Result<Self, ReadError> {
        let mut r = FileReader {
            src,
            buf: Vec::new(),
            chunk: chunk.max(64),
            opened: false,
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            swapped: false,
            fmt: Format::Pcap {
                nano: false,
                hdrsize: 16,
                lengths: LenSwap::No,
            },
            linktype: 0,
            snapshot: 0,
        };
        let have = r.fill(4)?;
        if have < 4 {
            return Err(bad(0, format!("unknown file format ({have} bytes)")));
        }
        let m = r.u32_at(0, false);
        if m == BT_SHB {
            r.open_pcapng()?;
        } else {
            r.open_pcap(m)?;
        }
        r.opened = true;
        Ok(r)
    }

    /// Link type of the file as a DLT value (what libpcap's `pcap_datalink` returns).
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// Bytes of the file consumed so far.
    pub fn consumed(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn offset(&self) -> u64 {
        self.consumed()
    }

    /// Make at least `need` unread bytes available if the source has them; returns how many
    /// are available (less than `need` only at the end of the source).
    fn fill(&mut self, need: usize) -> Result<usize, ReadError> {
        if self.end - self.pos >= need || self.eof {
            return Ok(self.end - self.pos);
        }
        if self.buf.len() - self.pos < need {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
            let want = if self.opened {
                need.max(self.chunk)
            } else {
                need.max(4096)
            };
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
        }
        while self.end - self.pos < need {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(bad(self.offset(), format!("error reading dump file: {e}")));
                }
            }
        }
        Ok(self.end - self.pos)
    }

    /// `u32` at `off` past the read position, in file byte order unless `native`.
    fn u32_at(&self, off: usize, swap: bool) -> u32 {
        let i = self.pos + off;
        let b = [
            self.buf[i],
            self.buf[i + 1],
            self.buf[i + 2],
            self.buf[i + 3],
        ];
        let v = u32::from_le_bytes(b);
        if swap {
            v.swap_bytes()
        } else {
            v
        }
    }

    fn u16_at(&self, off: usize) -> u16 {
        let i = self.pos + off;
        let v = u16::from_le_bytes([self.buf[i], self.buf[i + 1]]);
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
        let have = self.fill(24)?;
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
        self.pos += 24;
        Ok(())
    }

    /// Read one whole pcapng block at the read position; `Ok(None)` at a clean end. Returns
    /// (block type, total length); the read position stays at the block start.
    fn block(&mut self, max: u32) -> Result<Option<(u32, usize)>, ReadError> {
        let off = self.offset();
        let have = self.fill(8)?;
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
        let have = self.fill(n)?;
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
        let have = self.fill(12)?;
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
        self.pos += n;
        self.fmt = Format::Ng {
            ifaces: Vec::new(),
            ifcount: 0,
        };
        loop {
            let off = self.offset();
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
                    self.pos += n;
                    return Ok(());
                }
                BT_EPB | BT_SPB | BT_PB => return Err(bad(
                    off,
                    "the capture file has a packet block before any Interface Description Blocks"
                        .into(),
                )),
                _ => self.pos += n,
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
            let v = self.pos + o + 4;
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
                    let r = self.buf[v];
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
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&self.buf[v..v + 8]);
                    let raw = u64::from_le_bytes(b);
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
            Ok(Some(p)) => Ok(Some(self.packet(p))),
            Ok(None) => Ok(None),
            Err(e) => {
                self.pos = self.end;
                self.eof = true;
                Err(e)
            }
        }
    }

    fn packet(&self, p: Found) -> FilePacket<'_> {
        FilePacket {
            raw: RawPacket {
                ts_micros: ts_micros(p.sec, p.usec),
                orig_len: p.len,
                data: &self.buf[p.data..p.data + p.caplen as usize],
                linktype: self.linktype,
            },
            ts_sec: p.sec,
            ts_nsec: p.nsec,
        }
    }

    fn next_pcap(
        &mut self,
        nano: bool,
        hdrsize: usize,
        lengths: LenSwap,
    ) -> Result<Option<Found>, ReadError> {
        let off = self.offset();
        let have = self.fill(hdrsize)?;
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
        let sec = i64::from(self.rd32(0) as i32);
        let frac = i64::from(self.rd32(4) as i32);
        let mut caplen = self.rd32(8);
        let mut len = self.rd32(12);
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
        let have = self.fill(total)? - hdrsize;
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
        let data = self.pos + hdrsize;
        self.pos += total;
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
            data,
        }))
    }

    fn next_ng(&mut self) -> Result<Option<Found>, ReadError> {
        loop {
            let off = self.offset();
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
                    self.pos += n;
                    continue;
                }
                BT_SHB => {
                    self.next_shb(off, n)?;
                    self.pos += n;
                    continue;
                }
                _ => {
                    self.pos += n;
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
            let sec = (t / ifc.tsresol).wrapping_add(ifc.tsoffset as u64) as i64;
            let frac = t % ifc.tsresol;
            let usec = i64::from(scale(frac, &ifc, 1_000_000) as i32);
            let nsec = i64::from(scale(frac, &ifc, 1_000_000_000) as i32);
            let start = self.pos + data;
            self.pos += n;
            return Ok(Some(Found {
                sec,
                usec,
                nsec,
                caplen,
                len,
                data: start,
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

/// Header fields of a found packet; `data` indexes the buffer.
#[derive(Debug, Clone, Copy)]
struct Found {
    sec: i64,
    usec: i64,
    nsec: i64,
    caplen: u32,
    len: u32,
    data: usize,
}

/// A sequence of capture files read as one stream by [`FileReader`].
///
/// Every file is opened up front so an unreadable or malformed file is reported before any
/// work starts. A file that ends in the middle of a record, or has a damaged record, is read up
/// to that record; the error is recorded in [`NativeFiles::file_errors`] and reading continues
/// with the next file.
pub struct NativeFiles {
    files: Vec<(PathBuf, Option<FileReader<File>>, u64)>,
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
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// Open one file with the native reader; errors name the file.
pub fn open_file(p: &Path) -> Result<FileReader<File>, CaptureError> {
    let err = |message: String| CaptureError::Open {
        path: p.display().to_string(),
        message,
    };
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => return Err(err("is a directory".into())),
        Ok(_) => {}
        Err(e) => return Err(err(e.to_string())),
    }
    let f = File::open(p).map_err(|e| err(e.to_string()))?;
    FileReader::new(f).map_err(|e| err(e.to_string()))
}

impl NativeFiles {
    /// Open every file; the first one that cannot be opened or has a bad header is an error
    /// naming it.
    pub fn open(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        let mut files = Vec::with_capacity(paths.len());
        let mut total = 0;
        for p in paths {
            let r = open_file(p)?;
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
}

impl PacketSource for NativeFiles {
    fn read(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RawPacket<'_>),
    ) -> Result<Status, CaptureError> {
        let mut n = 0;
        let mut done: u64 = self.files.iter().take(self.current).map(|f| f.2).sum();
        while n < max {
            let Some(entry) = self.files.get_mut(self.current) else {
                break;
            };
            let Some(r) = entry.1.as_mut() else {
                self.current += 1;
                continue;
            };
            match r.next_packet() {
                Ok(Some(p)) => {
                    f(p.raw);
                    n += 1;
                }
                Ok(None) => {
                    entry.1 = None;
                    done += entry.2;
                    self.current += 1;
                }
                Err(e) => {
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
            .map_or(0, FileReader::consumed);
        self.bytes_read = done + cur;
        Ok(if n > 0 {
            Status::Packets(n)
        } else {
            Status::End
        })
    }
}

/// Which reader offline runs use for capture files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OfflineReader {
    /// [`NativeFiles`] (the default): measured faster than libpcap, see `bench_read`.
    #[default]
    Native,
    /// libpcap ([`OfflineFiles`]); also used whenever `capture.filter` is set, as the native
    /// reader has no BPF engine.
    Libpcap,
}

impl std::str::FromStr for OfflineReader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(OfflineReader::Native),
            "libpcap" => Ok(OfflineReader::Libpcap),
            _ => Err(format!("unknown reader {s:?}, expected native or libpcap")),
        }
    }
}

static READER: AtomicU8 = AtomicU8::new(0);

/// Choose the reader of later offline runs in this process (`analyze --reader`).
pub fn set_offline_reader(r: OfflineReader) {
    READER.store(r as u8, Ordering::Relaxed);
}

/// The reader offline runs use (see [`set_offline_reader`]).
pub fn offline_reader() -> OfflineReader {
    if READER.load(Ordering::Relaxed) == OfflineReader::Libpcap as u8 {
        OfflineReader::Libpcap
    } else {
        OfflineReader::Native
    }
}

/// The capture files of an offline run, read by one of the two readers.
#[derive(Debug)]
pub enum OfflineInput {
    /// libpcap.
    Libpcap(OfflineFiles),
    /// The native reader.
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
