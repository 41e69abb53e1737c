//! Small helpers: RFC 3339 timestamps, wall clock, SHA-256 hex.

/// Parse an RFC 3339 timestamp (`2026-03-02T09:14:07.118Z`, `...+08:00`) into Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    crossline_config::event::parse_timestamp_micros(s).map(|us| us.div_euclid(1000))
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_ms(ms: i64) -> String {
    crossline_config::event::format_timestamp_micros(ms.saturating_mul(1000))
}

/// Wall clock, Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The wall clock the server reads, in Unix milliseconds: [`Clock::system`] in production (set
/// by `main`), a pinned instant in tests. Handlers take the time from the one the server state
/// holds rather than reading the system clock themselves.
#[derive(Clone)]
pub struct Clock(std::sync::Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock ([`now_ms`]).
    pub fn system() -> Clock {
        Clock(std::sync::Arc::new(now_ms))
    }

    /// A clock that always reads `ms`.
    pub fn fixed(ms: i64) -> Clock {
        Clock(std::sync::Arc::new(move || ms))
    }

    /// Now, Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }

    /// Today in Beijing (UTC+8).
    pub fn today_beijing(&self) -> crossline_config::time::Date {
        crossline_config::time::shanghai(self.now_ms().div_euclid(1000)).date
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Clock").field(&self.now_ms()).finish()
    }
}

/// Lower-case SHA-256 hex of some bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let ms = parse_rfc3339_ms("2026-03-02T09:14:07.118Z").expect("valid");
        assert_eq!(ms, 1_772_442_847_118);
        assert_eq!(format_ms(ms), "2026-03-02T09:14:07.118Z");
        assert_eq!(parse_rfc3339_ms("2026-03-02T17:14:07.118+08:00"), Some(ms));
        assert_eq!(
            parse_rfc3339_ms("2026-03-02T09:14:07Z"),
            Some(1_772_442_847_000)
        );
        assert_eq!(parse_rfc3339_ms("2026-02-30T09:14:07Z"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("2026-03-02T09:14:07.Z"), None);
    }

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
