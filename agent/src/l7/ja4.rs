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

    // Sized up front (a filtered collect grows from empty, copying as it goes).
    let without_grease = |values: &[u16]| {
        let mut v = Vec::with_capacity(values.len());
        v.extend(values.iter().copied().filter(|&v| !is_grease(v)));
        v
    };
    let mut ciphers = without_grease(input.ciphers);
    let mut extensions = without_grease(input.extensions);
    let cipher_count = ciphers.len().min(99);
    let extension_count = extensions.len().min(99);

    let mut out = String::with_capacity(36);
    out.push(char::from(input.transport));
    out.push_str(version);
    out.push(if input.sni_domain { 'd' } else { 'i' });
    let _ = write!(out, "{cipher_count:02}{extension_count:02}");
    push_alpn_chars(&mut out, input.first_alpn);
    out.push('_');

    ciphers.sort_unstable();
    let longest = ciphers
        .len()
        .max(extensions.len() + input.signature_algorithms.len() + 1);
    let mut text = String::with_capacity(longest * 5);
    join_hex(&mut text, &ciphers);
    push_truncated_hash(&mut out, &text);
    out.push('_');

    extensions.retain(|&e| e != 0x0000 && e != 0x0010);
    extensions.sort_unstable();
    text.clear();
    join_hex(&mut text, &extensions);
    let signature_algorithms = without_grease(input.signature_algorithms);
    if !signature_algorithms.is_empty() {
        text.push('_');
        join_hex(&mut text, &signature_algorithms);
    }
    if extensions.is_empty() {
        out.push_str("000000000000");
    } else {
        push_truncated_hash(&mut out, &text);
    }
    out
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

fn hex_digit(nibble: u16) -> char {
    char::from(HEX.get(usize::from(nibble & 0x0f)).copied().unwrap_or(b'0'))
}

fn join_hex(out: &mut String, values: &[u16]) {
    out.reserve(values.len() * 5);
    for (i, &v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for shift in [12, 8, 4, 0] {
            out.push(hex_digit(v >> shift));
        }
    }
}

fn push_truncated_hash(out: &mut String, text: &str) {
    if text.is_empty() {
        out.push_str("000000000000");
        return;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    for &b in digest.as_ref().iter().take(6) {
        out.push(hex_digit(u16::from(b >> 4)));
        out.push(hex_digit(u16::from(b)));
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
}
