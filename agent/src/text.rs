//! Short text written into fixed buffers: addresses and numbers that events and alert
//! summaries carry, without allocating and without the formatting machinery on the hot path.

use crossline_config::event::FixedWriter;
use std::net::IpAddr;

/// Text written into a fixed buffer (an address, a protocol number): flow records borrow
/// their strings from these instead of allocating them.
#[derive(Debug, Clone, Copy)]
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    /// `value` as its `Display` writes it, cut at `N` bytes.
    pub fn of(value: impl std::fmt::Display) -> Self {
        use std::fmt::Write as _;
        let mut buf = [0u8; N];
        let mut w = FixedWriter {
            buf: &mut buf,
            len: 0,
        };
        // An address is at most 45 characters, a protocol number 3.
        let _ = write!(w, "{value}");
        let len = w.len;
        Text { buf, len }
    }

    /// An address as `IpAddr`'s `Display` writes it, byte by byte (the formatting machinery
    /// cost more than the rest of the record): IPv4 dotted; IPv6 in RFC 5952's form as the
    /// standard library writes it (lower-case hex, the longest run of two or more zero groups,
    /// the first of equals, as `::`; an IPv4-mapped address as `::ffff:` and dotted IPv4).
    pub fn ip(ip: std::net::IpAddr) -> Self {
        let mut buf = [0u8; N];
        let len = write_ip(ip, &mut buf);
        Text { buf, len }
    }

    /// A service as an alert names it (`tcp/443`, `udp/53`, `ip/50`), without the formatting
    /// machinery.
    pub fn service(service: crate::analysis::findings::ServiceRef) -> Self {
        let (name, number): (&[u8], u16) = match service.ip_proto {
            6 => (b"tcp/", service.port),
            17 => (b"udp/", service.port),
            p => (b"ip/", u16::from(p)),
        };
        let mut digits = [0u8; 5];
        let mut i = digits.len();
        let mut n = number;
        loop {
            i -= 1;
            if let Some(d) = digits.get_mut(i) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        let mut buf = [0u8; N];
        let mut len = 0;
        for &b in name.iter().chain(digits.get(i..).unwrap_or_default()) {
            if let Some(slot) = buf.get_mut(len) {
                *slot = b;
                len += 1;
            }
        }
        Text { buf, len }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Several short texts of one event side by side in one fixed buffer, checked as UTF-8 once
/// for all of them: a record borrows five or six strings from fixed buffers, and checking
/// each on its own cost more than the check itself (a call and its set-up per string).
#[derive(Debug, Clone, Copy)]
pub struct Joined<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Joined<N> {
    /// Nothing yet.
    pub fn new() -> Self {
        Joined {
            buf: [0; N],
            len: 0,
        }
    }

    /// Append `bytes` and return where they went, or an empty place (the text reads as
    /// empty) when they do not fit: `N` is chosen for the longest texts a caller joins.
    pub fn push(&mut self, bytes: &[u8]) -> std::ops::Range<usize> {
        let end = self.len + bytes.len();
        let fits = self
            .buf
            .get_mut(self.len..)
            .is_some_and(|dst| crossline_config::bytes::copy(dst, bytes));
        if !fits {
            return self.len..self.len;
        }
        let at = self.len..end;
        self.len = end;
        at
    }

    /// Append what `write` writes into the room left (it returns how many bytes it wrote, 0
    /// when they did not fit) and return where they went, as [`Joined::push`]: a text written
    /// in place rather than built elsewhere and copied.
    pub fn write(&mut self, write: impl FnOnce(&mut [u8]) -> usize) -> std::ops::Range<usize> {
        let start = self.len;
        let n = self.buf.get_mut(start..).map_or(0, write);
        self.len = (start + n).min(N);
        start..self.len
    }

    /// Everything appended, as one string (empty if it were not UTF-8): each text is the
    /// slice at the place [`Joined::push`] returned.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or("")
    }
}

impl<const N: usize> Default for Joined<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Dotted IPv4.
/// [`Text::ip`] written at the start of `buf`, where the text is used (a flow record's joined
/// texts: built in a `Text` and copied, the bytes were read back right after the byte stores
/// that wrote them, a store-forwarding stall per copy). Its length; 0, and `buf` holding a part
/// of it, when it does not fit. The length is a local, not behind a reference: writing through
/// one kept it in memory, a load and a store per byte.
pub fn write_ip(ip: IpAddr, buf: &mut [u8]) -> usize {
    let mut len = 0;
    let mut fits = true;
    let mut put = |b: u8| match buf.get_mut(len) {
        Some(slot) => {
            *slot = b;
            len += 1;
        }
        None => fits = false,
    };
    match ip {
        IpAddr::V4(v4) => put_v4(v4.octets(), &mut put),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                b"::ffff:".iter().for_each(|&b| put(b));
                put_v4(v4.octets(), &mut put);
            } else {
                let seg = v6.segments();
                // The longest run of zero groups (the first of equal ones).
                let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
                for (i, &g) in seg.iter().enumerate() {
                    if g == 0 {
                        if run_len == 0 {
                            run = i;
                        }
                        run_len += 1;
                        if run_len > best_len {
                            (best, best_len) = (run, run_len);
                        }
                    } else {
                        run_len = 0;
                    }
                }
                if best_len > 1 {
                    put_groups(&seg[..best], &mut put);
                    put(b':');
                    put(b':');
                    put_groups(&seg[best + best_len..], &mut put);
                } else {
                    put_groups(&seg, &mut put);
                }
            }
        }
    }
    if fits {
        len
    } else {
        0
    }
}

#[inline(always)]
fn put_v4(octets: [u8; 4], put: &mut impl FnMut(u8)) {
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            put(b'.');
        }
        if octet >= 100 {
            put(b'0' + octet / 100);
        }
        if octet >= 10 {
            put(b'0' + (octet / 10) % 10);
        }
        put(b'0' + octet % 10);
    }
}

/// IPv6 groups in lower-case hex without leading zeros, joined by `:`.
#[inline(always)]
fn put_groups(groups: &[u16], put: &mut impl FnMut(u8)) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, &g) in groups.iter().enumerate() {
        if i > 0 {
            put(b':');
        }
        let digits = (16 - g.leading_zeros() as usize).div_ceil(4).max(1);
        for k in (0..digits).rev() {
            put(HEX[usize::from((g >> (4 * k)) & 0xf)]);
        }
    }
}

impl<const N: usize> std::fmt::Display for Text<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// An address that formats as `IpAddr`'s `Display` does, IPv4 digit by digit.
#[derive(Debug, Clone, Copy)]
pub struct Ip(pub IpAddr);

impl std::fmt::Display for Ip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(_) => f.write_str(Text::<48>::ip(self.0).as_str()),
            IpAddr::V6(_) => self.0.fmt(f),
        }
    }
}

impl Ip {
    /// The address as an owned string.
    pub fn string(ip: IpAddr) -> String {
        Text::<48>::ip(ip).as_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::{Ip, Joined, Text};

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut addrs: Vec<std::net::IpAddr> = Vec::new();
        for a in [0u8, 1, 9, 10, 99, 100, 199, 255] {
            for b in [0u8, 7, 42, 250] {
                addrs.push(std::net::Ipv4Addr::new(a, b, 255 - a, b / 3).into());
            }
        }
        addrs.push("2001:db8::1".parse().expect("v6"));
        addrs.push("::ffff:10.1.2.3".parse().expect("v6"));
        addrs.push(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse()
                .expect("v6"),
        );
        for ip in addrs {
            assert_eq!(Text::<48>::ip(ip).as_str(), ip.to_string());
            assert_eq!(Ip(ip).to_string(), ip.to_string());
            assert_eq!(Ip::string(ip), ip.to_string());
        }
    }

    /// Every pattern of zero and non-zero groups (so every place and length of the zero run
    /// the text shortens), with short and long groups, and the IPv4-mapped and -compatible
    /// forms, against the standard library's text.
    #[test]
    fn ipv6_addresses_are_written_as_display_writes_them() {
        let values = [0u16, 1, 0xa0, 0xabc, 0xffff];
        let mut seg = [0u16; 8];
        for mut n in 0..values.len().pow(8) {
            for g in seg.iter_mut() {
                *g = values[n % values.len()];
                n /= values.len();
            }
            let ip = std::net::IpAddr::V6(std::net::Ipv6Addr::from(seg));
            assert_eq!(Text::<48>::ip(ip).as_str(), ip.to_string(), "{seg:x?}");
        }
        for text in [
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "::ffff:0.0.0.0",
            "64:ff9b::192.0.2.1",
        ] {
            let ip: std::net::IpAddr = text.parse().expect("v6");
            assert_eq!(Text::<48>::ip(ip).as_str(), ip.to_string());
        }
    }

    /// Addresses written in place read back as `Display` writes them; one that does not fit
    /// the room left is not written (an empty text) and leaves what came before, and a later
    /// one that fits still goes in.
    #[test]
    fn addresses_written_in_place_fit_or_read_as_empty() {
        let ips: [std::net::IpAddr; 4] = [
            "10.20.30.40".parse().expect("v4"),
            "2001:db8::abcd:1".parse().expect("v6"),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse()
                .expect("v6"),
            "1.2.3.4".parse().expect("v4"),
        ];
        let mut j = Joined::<40>::new();
        let at = ips.map(|ip| j.write(|b| super::write_ip(ip, b)));
        let all = j.as_str();
        let text = |r: &std::ops::Range<usize>| all.get(r.clone()).unwrap_or("x");
        assert_eq!(text(&at[0]), "10.20.30.40");
        assert_eq!(text(&at[1]), "2001:db8::abcd:1");
        assert_eq!(text(&at[2]), "", "39 bytes in the 13 left");
        assert_eq!(text(&at[3]), "1.2.3.4");
        assert_eq!(all, "10.20.30.402001:db8::abcd:11.2.3.4");
        let mut exact = [0u8; 7];
        assert_eq!(super::write_ip(ips[3], &mut exact), 7);
        assert_eq!(super::write_ip(ips[3], &mut exact[..6]), 0);
    }

    #[test]
    fn joined_texts_read_back_each_as_pushed() {
        let mut j = Joined::<16>::new();
        let a = j.push(b"10.0.0.1");
        let empty = j.push(b"");
        let b = j.push(b"::1");
        // Does not fit: an empty text, and what was pushed before stays as it was.
        let over = j.push(b"0123456789");
        let c = j.push(b"1:ab");
        let all = j.as_str();
        let text = |at: std::ops::Range<usize>| all.get(at).unwrap_or("x");
        assert_eq!(text(a), "10.0.0.1");
        assert_eq!(text(empty), "");
        assert_eq!(text(b), "::1");
        assert_eq!(text(over), "");
        assert_eq!(text(c), "1:ab");
        assert_eq!(all, "10.0.0.1::11:ab");
        // Not UTF-8 (never what the callers push): every text reads as empty.
        let mut bad = Joined::<8>::new();
        let at = bad.push(&[b'a', 0xff]);
        assert_eq!(bad.as_str().get(at).unwrap_or(""), "");
    }
}
