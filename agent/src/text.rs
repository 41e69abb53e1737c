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

    /// An address as `IpAddr`'s `Display` writes it; IPv4 digit by digit (the formatting
    /// machinery cost more than the rest of the record).
    pub fn ip(ip: std::net::IpAddr) -> Self {
        let std::net::IpAddr::V4(v4) = ip else {
            return Self::of(ip);
        };
        let mut buf = [0u8; N];
        let mut len = 0;
        let mut put = |b: u8| {
            if let Some(slot) = buf.get_mut(len) {
                *slot = b;
                len += 1;
            }
        };
        for (i, octet) in v4.octets().into_iter().enumerate() {
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
        Text { buf, len }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or("")
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
    use super::{Ip, Text};

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
}
