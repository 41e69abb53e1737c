//! JA4 TLS client fingerprint (FoxIO JA4 specification, BSD-3-Clause; implemented from the
//! published description, not from its code).
//!
//! `t13d1516h2_8daaf6152771_e5627efa2ab1` reads as:
//! - `t` transport (`t` TCP, `q` QUIC), `13` highest offered TLS version, `d` SNI present
//!   (`i` when absent or an IP literal, which RFC 6066 forbids in SNI), `15` cipher suites, `16` extensions (both two digits, capped at 99,
//!   GREASE excluded), `h2` first and last character of the first ALPN value (`00` when none);
//! - the first 12 hex digits of SHA-256 over the sorted, comma-joined 4-digit hex cipher suites;
//! - the first 12 hex digits of SHA-256 over the sorted extension types without SNI (0x0000)
//!   and ALPN (0x0010), then `_` and the signature algorithms in the order offered.
//!
//! The rest of the JA4+ family is not permissively licensed and is deliberately absent.

use super::U16List;
use std::fmt::Write as _;

/// The ClientHello facts a JA4 fingerprint is made of.
#[derive(Debug, Clone, Copy)]
pub struct Ja4Input<'a> {
    /// `b't'` for TLS over TCP, `b'q'` for QUIC, `b'd'` for DTLS.
    pub transport: u8,
    /// `legacy_version` of the ClientHello (used when there is no supported_versions list).
    pub legacy_version: u16,
    /// The supported_versions extension values, in order (GREASE included or not).
    pub supported_versions: &'a [u16],
    /// A server_name extension is present and its name is not an IP literal (`d`; else `i`).
    pub sni_domain: bool,
    /// Cipher suites as offered (GREASE included or not).
    pub ciphers: &'a [u16],
    /// Extension types as offered (GREASE included or not).
    pub extensions: &'a [u16],
    /// The first ALPN protocol value, if any.
    pub first_alpn: Option<&'a [u8]>,
    /// Signature algorithms as offered (GREASE included or not).
    pub signature_algorithms: &'a [u16],
}

/// True for the reserved GREASE values of RFC 8701 (`0x?a?a` with equal bytes).
pub fn is_grease(value: u16) -> bool {
    let [high, low] = value.to_be_bytes();
    high == low && (low & 0x0f) == 0x0a
}

/// Computes the JA4 fingerprint string.
pub fn fingerprint(input: &Ja4Input<'_>) -> String {
    let version = input
        .supported_versions
        .iter()
        .copied()
        .filter(|&v| !is_grease(v))
        .max()
        .unwrap_or(input.legacy_version);
    let version = match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0200 => "s2",
        0x0100 => "s1",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    };

    // On the stack: a fingerprint is computed for every TLS and QUIC flow.
    let not_grease = |v: u16| !is_grease(v);
    let mut ciphers = U16List::filtered(input.ciphers, not_grease);
    let mut extensions = U16List::filtered(input.extensions, not_grease);
    let cipher_count = ciphers.len().min(99);
    let extension_count = extensions.len().min(99);

    let mut out = String::with_capacity(36);
    out.push(char::from(input.transport));
    out.push_str(version);
    out.push(if input.sni_domain { 'd' } else { 'i' });
    push_two_digits(&mut out, cipher_count);
    push_two_digits(&mut out, extension_count);
    push_alpn_chars(&mut out, input.first_alpn);
    out.push('_');

    ciphers.as_mut_slice().sort_unstable();
    let mut hash = HexHash::new();
    hash.join(ciphers.as_slice());
    hash.push_truncated(&mut out);
    out.push('_');

    extensions.retain(|e| e != 0x0000 && e != 0x0010);
    extensions.as_mut_slice().sort_unstable();
    let mut hash = HexHash::new();
    hash.join(extensions.as_slice());
    let signature_algorithms = U16List::filtered(input.signature_algorithms, not_grease);
    if !signature_algorithms.is_empty() {
        hash.byte(b'_');
        hash.join(signature_algorithms.as_slice());
    }
    if extensions.is_empty() {
        out.push_str("000000000000");
    } else {
        hash.push_truncated(&mut out);
    }
    out
}

/// `n` (below 100) as two decimal digits.
fn push_two_digits(out: &mut String, n: usize) {
    let n = n.min(99) as u8;
    out.push(char::from(b'0' + n / 10));
    out.push(char::from(b'0' + n % 10));
}

/// First and last character of the first ALPN value; hex digits when either is not ASCII
/// alphanumeric; `00` when there is no ALPN.
fn push_alpn_chars(out: &mut String, alpn: Option<&[u8]>) {
    let (Some(&first), Some(&last)) = (alpn.and_then(|a| a.first()), alpn.and_then(|a| a.last()))
    else {
        out.push_str("00");
        return;
    };
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        out.push(char::from(first));
        out.push(char::from(last));
    } else {
        // First character of the hex of the first byte, last character of the hex of the last.
        let _ = write!(out, "{:x}{:x}", first >> 4, last & 0x0f);
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The lower-case hex digit of the low 4 bits of `nibble`.
fn hex_byte(nibble: u16) -> u8 {
    HEX.get(usize::from(nibble & 0x0f)).copied().unwrap_or(b'0')
}

fn hex_digit(nibble: u16) -> char {
    char::from(hex_byte(nibble))
}

/// SHA-256 over text written piece by piece (comma-joined 4-digit hex values), through a
/// small buffer on the stack instead of the whole text in a `String`.
struct HexHash {
    ctx: ring::digest::Context,
    buf: [u8; 256],
    len: usize,
    /// Bytes hashed so far (an empty text hashes to zeros, not to SHA-256 of nothing).
    total: usize,
    /// The current `join` wrote a value already (a comma goes before each one after it).
    in_join: bool,
}

impl HexHash {
    fn new() -> Self {
        HexHash {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            buf: [0; 256],
            len: 0,
            total: 0,
            in_join: false,
        }
    }

    fn byte(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.ctx.update(&self.buf);
            self.len = 0;
        }
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
            self.total += 1;
        }
    }

    /// The values as comma-joined 4-digit lower-case hex.
    fn join(&mut self, values: &[u16]) {
        self.in_join = false;
        for &v in values {
            if self.in_join {
                self.byte(b',');
            }
            self.in_join = true;
            for shift in [12, 8, 4, 0] {
                self.byte(hex_byte(v >> shift));
            }
        }
    }

    /// Append the first 12 hex digits of the hash (`000000000000` for an empty text).
    fn push_truncated(mut self, out: &mut String) {
        if self.total == 0 {
            out.push_str("000000000000");
            return;
        }
        self.ctx.update(self.buf.get(..self.len).unwrap_or(&[]));
        let digest = self.ctx.finish();
        for &b in digest.as_ref().iter().take(6) {
            out.push(hex_digit(u16::from(b >> 4)));
            out.push(hex_digit(u16::from(b)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x1301));
    }

    /// The worked example of the JA4 technical description (a Chrome ClientHello): the
    /// cipher and extension strings and the resulting `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    #[test]
    fn spec_example_chrome() {
        let ciphers = [
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
            0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let extensions = [
            0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
            0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
        ];
        let sigs = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        let ja4 = fingerprint(&Ja4Input {
            transport: b't',
            legacy_version: 0x0303,
            supported_versions: &[0x7a7a, 0x0304, 0x0303],
            sni_domain: true,
            ciphers: &ciphers,
            extensions: &extensions,
            first_alpn: Some(b"h2"),
            signature_algorithms: &sigs,
        });
        assert_eq!(ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }

    #[test]
    fn alpn_non_alphanumeric_uses_hex() {
        let mut s = String::new();
        push_alpn_chars(&mut s, Some(&[0xab, 0x01, 0xcd]));
        assert_eq!(s, "ad");
        s.clear();
        push_alpn_chars(&mut s, Some(b"http/1.1"));
        assert_eq!(s, "h1");
        s.clear();
        push_alpn_chars(&mut s, None);
        assert_eq!(s, "00");
    }

    #[test]
    fn no_ciphers_no_extensions() {
        let ja4 = fingerprint(&Ja4Input {
            transport: b'q',
            legacy_version: 0x0301,
            supported_versions: &[],
            sni_domain: false,
            ciphers: &[],
            extensions: &[],
            first_alpn: None,
            signature_algorithms: &[],
        });
        assert_eq!(ja4, "q10i000000_000000000000_000000000000");
    }

    /// The fingerprint as the description states it, built the plain way (whole strings,
    /// then SHA-256), for comparison with the streaming one.
    fn plain(input: &Ja4Input<'_>) -> String {
        let hex = |v: &[u16]| {
            v.iter()
                .map(|x| format!("{x:04x}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let hash12 = |text: &str| {
            if text.is_empty() {
                return "000000000000".to_string();
            }
            let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
            d.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect()
        };
        let clean = |v: &[u16]| {
            v.iter()
                .copied()
                .filter(|&x| !is_grease(x))
                .collect::<Vec<_>>()
        };
        let (mut c, mut e, s) = (
            clean(input.ciphers),
            clean(input.extensions),
            clean(input.signature_algorithms),
        );
        let head = fingerprint(input)[..10].to_string();
        c.sort_unstable();
        let counted = e.len();
        e.retain(|&x| x != 0 && x != 0x10);
        e.sort_unstable();
        let mut ext_text = hex(&e);
        if !s.is_empty() {
            ext_text.push('_');
            ext_text.push_str(&hex(&s));
        }
        let ext_hash = if e.is_empty() {
            "000000000000".to_string()
        } else {
            hash12(&ext_text)
        };
        assert_eq!(&head[4..6], format!("{:02}", c.len().min(99)));
        assert_eq!(&head[6..8], format!("{:02}", counted.min(99)));
        format!("{head}_{}_{ext_hash}", hash12(&hex(&c)))
    }

    /// Lists longer than the stack holds (a scanner offering hundreds of suites), lists
    /// whose text passes the hash buffer many times over, and GREASE among them: the
    /// streaming fingerprint equals the plain one.
    #[test]
    fn long_lists_match_the_plain_computation() {
        let mut seed = 0x9e37_79b9_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u16
        };
        for n in [0usize, 1, 15, 51, 127, 128, 129, 300, 1000] {
            let ciphers: Vec<u16> = (0..n)
                .map(|i| if i % 9 == 0 { 0x3a3a } else { next() })
                .collect();
            let extensions: Vec<u16> = (0..n / 2 + 1).map(|_| next() % 64).collect();
            let sigs: Vec<u16> = (0..n / 3).map(|_| next()).collect();
            let input = Ja4Input {
                transport: b't',
                legacy_version: 0x0303,
                supported_versions: &[0x0304],
                sni_domain: n % 2 == 0,
                ciphers: &ciphers,
                extensions: &extensions,
                first_alpn: Some(b"h2"),
                signature_algorithms: &sigs,
            };
            assert_eq!(fingerprint(&input), plain(&input), "{n} ciphers");
        }
    }
}
