//! Cleartext personal-information scanner: resident identity numbers (GB 11643), mainland mobile
//! numbers, bank card numbers (Luhn) and e-mail addresses.
//!
//! The scanner is a single pass over the payload, byte by byte, with no allocation and no regex.
//! Digit runs are collected into a small carry buffer ([`PiCarry`], 24 bytes) that lives in the
//! flow state, so an identifier split across two packets of a flow is still found. A digit run
//! is judged only when it is closed by a non-digit, so digits glued to other digits never count
//! (the run is exactly the identifier or nothing):
//!
//! - 18 digits, or 17 digits and `X`: resident ID, when `checks::resident_id_plausible` holds
//!   (check character, birth date, province);
//! - 11 digits `1[3-9]…`, or 13 digits `86 1[3-9]…` (a leading `+` is allowed by construction):
//!   mobile number;
//! - 13–19 digits passing Luhn and starting with `62` (UnionPay), `4`, `5` or `3` (Visa,
//!   Mastercard, JCB/Amex): bank card. Other prefixes are not taken as cards (too many false
//!   positives from order numbers and timestamps).
//!
//! E-mail addresses are found around each `@` inside one packet (local part looked up backwards
//! at most 64 bytes, domain forwards at most 253 bytes, with a dot and a top-level label of at
//! least two letters); an address split across two packets is not found.

use crossline_config::checks::{luhn_valid, resident_id_plausible};

/// Kinds of personal identifier found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiKind {
    /// GB 11643 resident identity number.
    ResidentId,
    /// Mainland mobile number.
    Mobile,
    /// Bank card number (Luhn).
    BankCard,
    /// E-mail address.
    Email,
}

impl PiKind {
    /// All kinds, in count order.
    pub const ALL: [PiKind; 4] = [
        PiKind::ResidentId,
        PiKind::Mobile,
        PiKind::BankCard,
        PiKind::Email,
    ];

    /// Human name used in alert summaries.
    pub fn label(self) -> &'static str {
        match self {
            PiKind::ResidentId => "resident ID number",
            PiKind::Mobile => "mobile number",
            PiKind::BankCard => "bank card number",
            PiKind::Email => "e-mail address",
        }
    }

    /// `n` and the label, plural when `n != 1` ("2 e-mail addresses").
    pub fn counted(self, n: u64) -> String {
        let label = self.label();
        match (n, self) {
            (1, _) => format!("1 {label}"),
            (_, PiKind::Email) => format!("{n} e-mail addresses"),
            _ => format!("{n} {label}s"),
        }
    }

    /// Position in a `[_; 4]` count array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the identifier is sensitive personal information (PIPL art. 28: financial
    /// accounts).
    pub fn sensitive(self) -> bool {
        matches!(self, PiKind::BankCard)
    }
}

/// Size of the carry buffer kept per flow.
pub const CARRY: usize = 24;

/// Digit run in progress, carried from one packet of a flow to the next.
#[derive(Debug, Clone, Copy, Default)]
pub struct PiCarry {
    buf: [u8; CARRY],
    len: u8,
    /// The run is longer than any identifier.
    overflow: bool,
    /// 17 digits and an `X` were seen; waiting for the next byte to know it is not a digit.
    x_pending: bool,
}

/// Longest identifier handed to the callback (an e-mail address).
pub const MAX_IDENT: usize = 64 + 1 + 253;

/// Bytes that can start something: ASCII digits and `@`.
static INTERESTING: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        t[b as usize] = true;
        b += 1;
    }
    t[b'@' as usize] = true;
    t
};

/// The position of the first of the eight bytes of `w` (little-endian: the first byte in
/// memory is the lowest) that is in [`INTERESTING`] (an ASCII digit or `@`), all tested at
/// once, or 8 when none is. A digit turns into a byte below 10 under `^ 0x30`, `@` into a
/// zero byte under `^ 0x40`, and "some byte below n" (n <= 128) has an exact word test whose
/// lowest flagged byte is exact too (a borrow only runs upward, from a byte that is flagged
/// rightly, so it can flag a later byte but never an earlier one).
#[inline]
fn first_interesting(w: u64) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let d = w ^ (0x30 * ONES);
    let a = w ^ (0x40 * ONES);
    let digit = d.wrapping_sub(10 * ONES) & !d & HIGH;
    let at = a.wrapping_sub(ONES) & !a & HIGH;
    (digit | at).trailing_zeros() as usize / 8
}

#[inline]
fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

#[inline]
fn is_domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

impl PiCarry {
    /// Whether a digit run is in progress.
    pub fn pending(&self) -> bool {
        self.len > 0
    }

    /// Scan `data`, the next bytes of the stream, calling `found(kind, identifier)` with the
    /// normalised identifier (digits; upper-case `X`; e-mail in lower case) of each finding.
    pub fn scan(&mut self, data: &[u8], found: &mut impl FnMut(PiKind, &[u8])) {
        let mut i = 0;
        let n = data.len();
        while i < n {
            if self.len == 0 {
                // Fast path: skip to the next digit or '@', eight bytes at a time, straight to
                // the byte in the word that holds one; a table load per byte in the last
                // few bytes.
                while let Some(w) = data.get(i..).and_then(|s| s.first_chunk::<8>()) {
                    let at = first_interesting(u64::from_le_bytes(*w));
                    i += at;
                    if at < 8 {
                        break;
                    }
                }
                while i < n && !INTERESTING[data[i] as usize] {
                    i += 1;
                }
                if i == n {
                    break;
                }
            }
            let b = data[i];
            if self.len == 0 {
                if b.is_ascii_digit() {
                    self.push(b);
                } else if b == b'@' {
                    email_at(data, i, found);
                }
                i += 1;
                continue;
            }
            if self.x_pending {
                if b.is_ascii_digit() {
                    // `…X` glued to a digit: not an identifier; the digit starts a new run.
                    self.reset();
                    self.push(b);
                    i += 1;
                    continue;
                }
                self.close(found);
                // Re-examine this byte with an empty run.
                continue;
            }
            if b.is_ascii_digit() {
                self.push(b);
            } else if (b == b'X' || b == b'x') && self.len == 17 && !self.overflow {
                self.buf[17] = b'X';
                self.len = 18;
                self.x_pending = true;
            } else {
                self.close(found);
                continue;
            }
            i += 1;
        }
    }

    /// The stream ended (flow record written): judge a run left in the carry.
    pub fn finish(&mut self, found: &mut impl FnMut(PiKind, &[u8])) {
        if self.len > 0 {
            self.close(found);
        }
    }

    #[inline]
    fn push(&mut self, b: u8) {
        if (self.len as usize) < CARRY {
            self.buf[self.len as usize] = b;
            self.len += 1;
        } else {
            self.overflow = true;
        }
    }

    fn reset(&mut self) {
        self.len = 0;
        self.overflow = false;
        self.x_pending = false;
    }

    fn close(&mut self, found: &mut impl FnMut(PiKind, &[u8])) {
        let len = self.len as usize;
        let overflow = self.overflow;
        let x = self.x_pending;
        self.reset();
        if overflow || len > 19 {
            return;
        }
        let d = &self.buf[..len];
        if len == 18 && resident_id_plausible(d) {
            found(PiKind::ResidentId, d);
            return;
        }
        if x {
            return;
        }
        if len == 11 && is_mobile(d) {
            found(PiKind::Mobile, d);
            return;
        }
        if len == 13 && d.starts_with(b"86") && is_mobile(&d[2..]) {
            found(PiKind::Mobile, &self.buf[2..13]);
            return;
        }
        if (13..=19).contains(&len) && card_prefix(d) && luhn_valid(d) {
            found(PiKind::BankCard, d);
        }
    }
}

fn is_mobile(d: &[u8]) -> bool {
    d.len() == 11 && d[0] == b'1' && (b'3'..=b'9').contains(&d[1])
}

fn card_prefix(d: &[u8]) -> bool {
    d.starts_with(b"62") || matches!(d.first(), Some(b'3' | b'4' | b'5'))
}

/// Look for an e-mail address around the `@` at `at`.
fn email_at(data: &[u8], at: usize, found: &mut impl FnMut(PiKind, &[u8])) {
    let mut start = at;
    while start > 0 && at - start < 64 && is_local_char(data[start - 1]) {
        start -= 1;
    }
    // Trim leading dots of the local part.
    while start < at && data[start] == b'.' {
        start += 1;
    }
    if start == at {
        return;
    }
    let mut end = at + 1;
    while end < data.len() && end - at - 1 < 253 && is_domain_char(data[end]) {
        end += 1;
    }
    // Trim trailing dots / hyphens (end of sentence).
    while end > at + 1 && matches!(data[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = &data[at + 1..end];
    let Some(dot) = domain.iter().rposition(|&b| b == b'.') else {
        return;
    };
    let tld = &domain[dot + 1..];
    if dot == 0 || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return;
    }
    let mut buf = [0u8; MAX_IDENT];
    let addr = &data[start..end];
    let out = &mut buf[..addr.len()];
    out.copy_from_slice(addr);
    out.make_ascii_lowercase();
    found(PiKind::Email, out);
}

/// Write the masked form of an identifier into `out`, returning its length: IDs keep the first
/// 6 and last 4 (`110105********002X`), mobiles the first 3 and last 4 (`138****5678`), cards the
/// first 4 and last 4 (`6222********0004`), e-mails the first character and the domain
/// (`a***@example.com`).
pub fn mask(kind: PiKind, ident: &[u8], out: &mut [u8; MAX_IDENT + 4]) -> usize {
    let mut n = 0;
    let mut put = |b: u8, n: &mut usize| {
        if *n < out.len() {
            out[*n] = b;
            *n += 1;
        }
    };
    let (keep_head, keep_tail) = match kind {
        PiKind::ResidentId => (6, 4),
        PiKind::Mobile => (3, 4),
        PiKind::BankCard => (4, 4),
        PiKind::Email => {
            let at = ident.iter().position(|&b| b == b'@').unwrap_or(0);
            if let Some(&c) = ident.first() {
                put(c, &mut n);
            }
            for _ in 0..3 {
                put(b'*', &mut n);
            }
            for &b in &ident[at..] {
                put(b, &mut n);
            }
            return n;
        }
    };
    let len = ident.len();
    for (i, &b) in ident.iter().enumerate() {
        let keep = i < keep_head || i >= len.saturating_sub(keep_tail);
        put(if keep { b } else { b'*' }, &mut n);
    }
    n
}

/// The masked form as a `String` (for evidence lists).
pub fn mask_string(kind: PiKind, ident: &[u8]) -> String {
    let mut buf = [0u8; MAX_IDENT + 4];
    let n = mask(kind, ident, &mut buf);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn word_test_finds_exactly_the_first_interesting_byte() {
        use super::{first_interesting, INTERESTING};
        let first = |bytes: &[u8; 8]| {
            bytes
                .iter()
                .position(|&x| INTERESTING[x as usize])
                .unwrap_or(8)
        };
        // Every byte value at every position, among neighbours that are and are not
        // interesting themselves, and a second byte at every later position (a borrow from a
        // lower byte must not hide, invent or move the first one).
        for fill in [
            0u8, b' ', b'/', b':', b'?', b'A', b'0', b'9', b'@', 0x7f, 0x80, 0xb0, 0xc0, 0xff,
        ] {
            for b in 0..=255u8 {
                for pos in 0..8 {
                    for (second, at) in [(fill, pos), (b'5', 7), (b'@', 7), (0x3a, 7), (0x41, 7)] {
                        let mut bytes = [fill; 8];
                        bytes[pos] = b;
                        if at > pos {
                            bytes[at] = second;
                        }
                        assert_eq!(
                            first_interesting(u64::from_le_bytes(bytes)),
                            first(&bytes),
                            "{bytes:?}"
                        );
                    }
                }
            }
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            assert_eq!(first_interesting(x), first(&bytes), "{x:#018x}");
            // The same word with a digit or '@' planted in each byte after a random prefix.
            for pos in 0..8 {
                let mut planted = bytes;
                planted[pos] = if x & (1 << pos) == 0 {
                    b'0' + pos as u8
                } else {
                    b'@'
                };
                assert_eq!(
                    first_interesting(u64::from_le_bytes(planted)),
                    first(&planted),
                    "{planted:?}"
                );
            }
        }
    }

    use super::*;

    fn scan_all(parts: &[&[u8]]) -> Vec<(PiKind, String)> {
        let mut c = PiCarry::default();
        let mut out = Vec::new();
        let mut f = |k: PiKind, id: &[u8]| out.push((k, String::from_utf8_lossy(id).into_owned()));
        for p in parts {
            c.scan(p, &mut f);
        }
        c.finish(&mut f);
        out
    }

    #[test]
    fn finds_each_kind() {
        let got = scan_all(&[
            b"name=Li id=11010519491231002X tel=+8613812345678 card 6222000000000000004 mail Bob.Li@Example.COM.",
        ]);
        assert_eq!(
            got,
            vec![
                (PiKind::ResidentId, "11010519491231002X".into()),
                (PiKind::Mobile, "13812345678".into()),
                (PiKind::BankCard, "6222000000000000004".into()),
                (PiKind::Email, "bob.li@example.com".into()),
            ]
        );
        let got = scan_all(&[b"440524188001010014,4111111111111111;13912345678"]);
        assert_eq!(got.len(), 3, "{got:?}");
    }

    #[test]
    fn rejects_bad_checks_and_glued_digits() {
        // Wrong check digit.
        assert!(scan_all(&[b"id 110105194912310021 "]).is_empty());
        // Luhn failure.
        assert!(scan_all(&[b"4111111111111112"]).is_empty());
        // Glued to more digits on either side.
        assert!(scan_all(&[b"911010519491231002X"]).is_empty());
        assert!(scan_all(&[b"11010519491231002X7"]).is_empty());
        assert!(scan_all(&[b"0138123456789"]).is_empty());
        assert!(scan_all(&[b"138123456789"]).is_empty());
        assert!(scan_all(&[b"12812345678"]).is_empty());
        // Letters around digits are fine.
        assert_eq!(scan_all(&[b"tel13812345678x"]).len(), 1);
        // Not e-mails.
        assert!(scan_all(&[b"a@b", b" @example.com", b"x@localhost "]).is_empty());
    }

    #[test]
    fn split_across_packets() {
        let whole: &[u8] = b"id=11010519491231002X;";
        for cut in 0..whole.len() {
            let got = scan_all(&[&whole[..cut], &whole[cut..]]);
            assert_eq!(got.len(), 1, "cut at {cut}: {got:?}");
            assert_eq!(got[0].1, "11010519491231002X");
        }
        // End of stream closes a pending run.
        assert_eq!(scan_all(&[b"1381234", b"5678"]).len(), 1);
        // X at a packet end followed by a digit in the next packet: glued.
        assert!(scan_all(&[b"11010519491231002X", b"5"]).is_empty());
    }

    #[test]
    fn masks() {
        let m = |k, s: &str| mask_string(k, s.as_bytes());
        assert_eq!(
            m(PiKind::ResidentId, "11010519491231002X"),
            "110105********002X"
        );
        assert_eq!(m(PiKind::Mobile, "13812345678"), "138****5678");
        assert_eq!(m(PiKind::BankCard, "6222000000000004"), "6222********0004");
        assert_eq!(m(PiKind::Email, "alice@example.com"), "a***@example.com");
    }
}
