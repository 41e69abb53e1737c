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
}
