//! Application-layer ("L7") taps: pure parsers that pull the few facts the classifier needs out
//! of the first bytes of a flow.
//!
//! - [`tls`]: TLS ClientHello over TCP (SNI, ALPN, ECH presence, JA4 fingerprint);
//! - [`quic`]: QUIC v1/v2 client Initial packets (header protection removal, decryption, CRYPTO
//!   reassembly) feeding the same ClientHello parser;
//! - [`dns`]: DNS answers (A/AAAA with CNAME chains) for the address → name cache;
//! - [`http`]: HTTP/1.x request line and `Host` header;
//! - [`banner`]: cheap protocol detection from first payload bytes (SSH, SMTP, FTP, WireGuard,
//!   OpenVPN, IPsec, RDP, SIP, HTTP);
//! - [`community_id`]: the Community ID v1 flow hash for cross-tool joins;
//! - [`ja4`]: the JA4 TLS client fingerprint carried in [`tls::ClientHello::ja4`].
//!
//! Test support for traffic generators: [`tls::build_client_hello`],
//! [`tls::build_client_hello_handshake`] and [`quic::build_initial_datagrams`]. Real samples
//! from the shared corpus live in `agent/testdata/` (see `extract.py` there); the property
//! tests are in `agent/tests/l7_props.rs`, the fuzz targets in `agent/fuzz/`.
//!
//! Every parser here is a pure function of its input: no I/O, no globals, no panics on any
//! input, bounded work, and cursor-style reads (`Reader`) that cannot over-read. Parsers that
//! may see a message before it is complete return the three-way [`Parse`] outcome, so the caller
//! can tell "keep buffering" from "give up on this flow".

pub mod banner;
pub mod community_id;
pub mod dns;
pub mod http;
pub mod ja4;
pub mod quic;
pub mod tls;

/// The outcome of an incremental parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    /// The message was recognised and decoded.
    Found(T),
    /// These bytes are not (or no longer look like) this protocol; stop feeding this parser.
    NotThisProtocol,
    /// The bytes so far are a valid prefix; call again with more bytes.
    NeedMore,
}

impl<T> Parse<T> {
    /// The decoded value, if any.
    pub fn found(self) -> Option<T> {
        match self {
            Parse::Found(value) => Some(value),
            Parse::NotThisProtocol | Parse::NeedMore => None,
        }
    }

    /// True for [`Parse::NeedMore`].
    pub fn is_need_more(&self) -> bool {
        matches!(self, Parse::NeedMore)
    }
}

/// A cursor over a byte slice that never reads past its end: every accessor returns `None`
/// instead of panicking when the input is too short (the pattern of rustls `msgs/codec.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Number of bytes not read yet.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when everything was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.buf.split_at_checked(n)?;
        self.buf = tail;
        Some(head)
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&first, tail) = self.buf.split_first()?;
        self.buf = tail;
        Some(first)
    }

    /// Reads a big-endian u16.
    pub(crate) fn u16(&mut self) -> Option<u16> {
        let bytes: [u8; 2] = self.take(2)?.try_into().ok()?;
        Some(u16::from_be_bytes(bytes))
    }

    /// Reads a big-endian 24-bit integer.
    pub(crate) fn u24(&mut self) -> Option<u32> {
        let bytes = self.take(3)?;
        Some(bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    }

    /// Reads a big-endian u32.
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let bytes: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    /// Reads a vector with a one-byte length prefix.
    pub(crate) fn vec_u8(&mut self) -> Option<&'a [u8]> {
        let len = self.u8()?;
        self.take(usize::from(len))
    }

    /// Reads a vector with a two-byte length prefix.
    pub(crate) fn vec_u16(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// Reads a QUIC variable-length integer (RFC 9000 section 16).
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let first = *self.buf.first()?;
        let len = 1usize << (first >> 6);
        let bytes = self.take(len)?;
        let mut value = u64::from(first & 0x3f);
        for &b in bytes.get(1..)? {
            value = (value << 8) | u64::from(b);
        }
        Some(value)
    }
}

/// A list of 16-bit values (a ClientHello's cipher suites, extension types, versions or
/// signature algorithms) kept on the stack up to [`U16List::INLINE`] values and on the heap
/// beyond: parsing a ClientHello and fingerprinting it allocates nothing for them in the
/// common case (each one cost an allocation per TLS or QUIC flow).
#[derive(Clone)]
pub(crate) struct U16List {
    inline: [u16; U16List::INLINE],
    len: usize,
    /// Every value once the list outgrew `inline` (empty, and unallocated, until then).
    spilled: Vec<u16>,
}

impl U16List {
    /// Values kept on the stack (a browser offers about 16 cipher suites and extensions;
    /// scanners that offer every suite they know go to the heap).
    pub(crate) const INLINE: usize = 128;

    pub(crate) fn new() -> Self {
        U16List {
            inline: [0; Self::INLINE],
            len: 0,
            spilled: Vec::new(),
        }
    }

    /// The big-endian 16-bit values of `bytes` (a trailing odd byte is ignored).
    pub(crate) fn from_be_bytes(bytes: &[u8]) -> Self {
        let mut list = U16List::new();
        list.extend_be_bytes(bytes);
        list
    }

    /// Append the big-endian 16-bit values of `bytes`.
    pub(crate) fn extend_be_bytes(&mut self, bytes: &[u8]) {
        for pair in bytes.chunks_exact(2) {
            if let [hi, lo] = *pair {
                self.push(u16::from_be_bytes([hi, lo]));
            }
        }
    }

    pub(crate) fn push(&mut self, value: u16) {
        if self.spilled.is_empty() {
            if let Some(slot) = self.inline.get_mut(self.len) {
                *slot = value;
                self.len += 1;
                return;
            }
            self.spilled.reserve(self.len * 2);
            self.spilled
                .extend_from_slice(self.inline.get(..self.len).unwrap_or(&[]));
        }
        self.spilled.push(value);
    }

    /// The values of `from` that `keep` accepts, in order.
    pub(crate) fn filtered(from: &[u16], keep: impl Fn(u16) -> bool) -> Self {
        let mut list = U16List::new();
        for &v in from {
            if keep(v) {
                list.push(v);
            }
        }
        list
    }

    /// Keep only the values `keep` accepts, in order.
    pub(crate) fn retain(&mut self, keep: impl Fn(u16) -> bool) {
        let values = self.as_mut_slice();
        let mut kept = 0;
        for i in 0..values.len() {
            let v = values[i];
            if keep(v) {
                values[kept] = v;
                kept += 1;
            }
        }
        self.truncate(kept);
    }

    fn truncate(&mut self, len: usize) {
        if self.spilled.is_empty() {
            self.len = self.len.min(len);
        } else {
            self.spilled.truncate(len);
        }
    }

    pub(crate) fn as_slice(&self) -> &[u16] {
        if self.spilled.is_empty() {
            self.inline.get(..self.len).unwrap_or(&[])
        } else {
            &self.spilled
        }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u16] {
        if self.spilled.is_empty() {
            self.inline.get_mut(..self.len).unwrap_or(&mut [])
        } else {
            &mut self.spilled
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for U16List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_never_over_reads() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u16(), None, "only one byte left");
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
        assert!(r.is_empty());
        let mut r = Reader::new(&[5, 1, 2]);
        assert_eq!(r.vec_u8(), None, "declared 5 bytes, 2 present");
    }

    #[test]
    fn varint_examples_from_rfc9000() {
        // RFC 9000 appendix A.1 sample encodings.
        let cases: [(&[u8], u64); 4] = [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, want) in cases {
            assert_eq!(Reader::new(bytes).varint(), Some(want));
        }
        assert_eq!(
            Reader::new(&[0x7b]).varint(),
            None,
            "truncated two-byte varint"
        );
    }

    /// The list holds the same values whether they fit on the stack or spilled to the heap,
    /// across the boundary, and keeps them in order through `retain`.
    #[test]
    fn u16_list_same_values_inline_and_spilled() {
        for n in [
            0,
            1,
            U16List::INLINE - 1,
            U16List::INLINE,
            U16List::INLINE + 1,
            700,
        ] {
            let want: Vec<u16> = (0..n as u16).map(|v| v.wrapping_mul(7919)).collect();
            let bytes: Vec<u8> = want.iter().flat_map(|v| v.to_be_bytes()).collect();
            let mut list = U16List::from_be_bytes(&bytes);
            assert_eq!(list.as_slice(), &want[..], "{n} values");
            assert_eq!(list.len(), n);
            assert_eq!(list.spilled.is_empty(), n <= U16List::INLINE, "{n} values");
            list.retain(|v| v % 2 == 0);
            let even: Vec<u16> = want.iter().copied().filter(|v| v % 2 == 0).collect();
            assert_eq!(list.as_slice(), &even[..], "{n} values, even ones kept");
            list.as_mut_slice().sort_unstable();
            let mut sorted = even.clone();
            sorted.sort_unstable();
            assert_eq!(list.as_slice(), &sorted[..]);
            let odd = U16List::filtered(&want, |v| v % 2 == 1);
            assert_eq!(odd.len(), n - even.len());
        }
        let mut odd_tail = U16List::from_be_bytes(&[0x13, 0x01, 0xff]);
        assert_eq!(
            odd_tail.as_slice(),
            &[0x1301],
            "a trailing odd byte is ignored"
        );
        odd_tail.push(2);
        assert_eq!(odd_tail.as_slice(), &[0x1301, 2]);
    }
}
