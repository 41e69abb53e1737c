//! Packet capture behind a small trait: offline pcap/pcapng files (the built-in reader,
//! [`mod@file`], with `read()` or a memory map, [`mapped`]; or libpcap, [`offline`]) and live
//! libpcap handles ([`live`]), with drop counters that survive libpcap's 32-bit wrap
//! ([`counter::WrapCounter`]). Another backend (AF_XDP, AF_PACKET TPACKET_V3) only has to
//! implement [`PacketSource`].

pub mod counter;
pub mod fanout;
pub mod file;
pub mod live;
pub mod mapped;
pub mod offline;

/// One captured packet, borrowed from the capture buffer until the next read.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// Capture time, Unix microseconds.
    pub ts_micros: i64,
    /// Length on the wire (pcap `len`), which can exceed `data.len()`.
    pub orig_len: u32,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Link type (DLT) of the source.
    pub linktype: i32,
    /// Where `data` lies in a read buffer the packet's consumers may share instead of copying
    /// (the file reader's chunks), if it does.
    pub shared: Option<SharedAt<'a>>,
}

/// A read buffer that holds a packet, and where: a worker thread can keep the buffer (a
/// reference count) and read the packet's bytes from it, instead of the capture thread copying
/// them (see [`crate::capture::file::Chunks`]).
#[derive(Debug, Clone, Copy)]
pub struct SharedAt<'a> {
    /// The buffer. The reader never writes into it again while another reference is held.
    pub buf: &'a std::sync::Arc<Vec<u8>>,
    /// Offset of the packet's first byte in `buf`.
    pub offset: usize,
}

/// Result of one read call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// This many packets were handed to the callback (at least one).
    Packets(usize),
    /// No packet within the read timeout (live).
    Timeout,
    /// The source is exhausted (offline: end of the last file).
    End,
    /// Offline: this many packets (maybe none) were handed to the callback, then a pipe or
    /// FIFO ran dry without ending (its writer has not written more yet). The next read waits
    /// for it; the caller can hand on what it holds in between.
    Stalled(usize),
}

/// Errors of a capture source.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A capture file could not be opened.
    #[error("cannot read capture file {path}: {message}")]
    Open {
        /// The file.
        path: String,
        /// libpcap's message.
        message: String,
    },
    /// A live interface could not be opened or configured.
    #[error("cannot capture on interface {interface}: {message}")]
    Interface {
        /// The interface.
        interface: String,
        /// libpcap's message.
        message: String,
    },
    /// `capture.filter` does not compile for a capture.
    #[error("capture.filter {filter:?} is not a valid BPF filter for {source_name}: {message}")]
    Filter {
        /// The filter expression.
        filter: String,
        /// File or interface.
        source_name: String,
        /// libpcap's message.
        message: String,
    },
    /// A read failed.
    #[error("capture read error on {source_name}: {message}")]
    Read {
        /// File or interface.
        source_name: String,
        /// libpcap's message.
        message: String,
    },
}

/// Kernel and interface drop totals of a live source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropTotals {
    /// Packets received by the filter.
    pub received: u64,
    /// Dropped by the kernel (no buffer room).
    pub kernel: u64,
    /// Dropped by the interface or driver.
    pub interface: u64,
}

/// A source of packets.
pub trait PacketSource {
    /// Read up to `max` packets, handing each to `f` (the bytes are only valid during the
    /// call). A recoverable per-file error (a file cut short) is recorded by the
    /// implementation, which moves on to the next file.
    fn read(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RawPacket<'_>),
    ) -> Result<Status, CaptureError>;

    /// Drop totals so far (live sources; offline returns zeros).
    fn drops(&mut self) -> DropTotals {
        DropTotals::default()
    }
}

/// Earliest packet time taken as real: the Unix epoch. Not 1990: real captures written with
/// relative time stamps start at 1970-01-01 (several in the test corpus do), and their flows
/// are still worth metering offline; what is refused is time before the epoch (a pcapng
/// `if_tsoffset` of -2^62 gives year -290308) or after 2099.
pub const TS_MIN_MICROS: i64 = 0;
/// Packet times from here on are not taken as real: 2100-01-01T00:00:00Z, Unix micros.
pub const TS_MAX_MICROS: i64 = 4_102_444_800_000_000;

/// Whether a packet time is inside the window [`TS_MIN_MICROS`, `TS_MAX_MICROS`). A packet
/// outside it (a broken clock, a pcapng `if_tsoffset` of -2^62) is counted as
/// `bad_timestamp` and dropped before it reaches a flow or an event.
pub fn ts_sane(ts_micros: i64) -> bool {
    (TS_MIN_MICROS..TS_MAX_MICROS).contains(&ts_micros)
}

/// Convert a `timeval`-style pair into Unix microseconds.
pub fn ts_micros(sec: i64, usec: i64) -> i64 {
    sec.saturating_mul(1_000_000).saturating_add(usec)
}
