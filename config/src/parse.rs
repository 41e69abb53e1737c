//! Parsers for the small value languages inside config files: byte sizes (`"20 GiB"`),
//! durations (`"5m"`), prefixes (`"10.20.0.0/16"`), host patterns (`"*.cro.example.de"`),
//! services (`"tcp/443"`), window days and hours, country codes.
//!
//! Each parser returns `Err(String)` with a message that says what arrived and what was
//! expected; the loader prefixes it with `FILE:LINE:COLUMN:` and the key.

use crate::registry::{host_bits, HostPattern, IpNet, Service, Transport};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Byte size units and their multipliers. Decimal (KB = 1000) and binary (KiB = 1024).
const BYTE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// Parse a byte size: `"20 GiB"`, `"500 MB"`, `"1.5 GiB"`, `"4096"` (bytes). KB/MB/GB/TB are
/// powers of 1000, KiB/MiB/GiB/TiB powers of 1024. A fraction is rounded down to whole bytes.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let number = number.replace('_', "");
    if number.is_empty() {
        return Err(format!(
            "{s:?} is not a byte size, expected a number and a unit such as \"64 MiB\" or \"500 MB\""
        ));
    }
    let multiplier = if unit.is_empty() {
        1
    } else {
        match BYTE_UNITS.iter().find(|(u, _)| *u == unit) {
            Some((_, m)) => *m,
            None => {
                return Err(format!(
                    "{s:?} has unknown unit {unit:?}, expected one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
                ))
            }
        }
    };
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number.as_str(), ""),
    };
    if int_part.is_empty()
        || frac_part.contains('.')
        || (number.contains('.') && frac_part.is_empty())
    {
        return Err(format!("{s:?} is not a byte size, the number is malformed"));
    }
    if !frac_part.is_empty() && multiplier == 1 {
        return Err(format!("{s:?} is not a whole number of bytes"));
    }
    let too_big = || format!("{s:?} is too large, expected at most {} bytes", u64::MAX);
    let int: u128 = int_part.parse().map_err(|_| too_big())?;
    let mut total = int
        .checked_mul(u128::from(multiplier))
        .ok_or_else(too_big)?;
    if !frac_part.is_empty() {
        let digits = frac_part.len().min(18);
        let frac: u128 = frac_part[..digits].parse().map_err(|_| too_big())?;
        total += frac * u128::from(multiplier) / 10u128.pow(digits as u32);
    }
    u64::try_from(total).map_err(|_| too_big())
}

/// Parse a duration: `"500ms"`, `"5s"`, `"5m"`, `"1h"`, `"1d"`, or a sequence such as `"1h30m"`.
/// Every number needs a unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!(
            "{s:?} is not a duration, expected a number and a unit such as \"5s\", \"5m\" or \"1h\""
        ));
    }
    let mut rest = t;
    let mut total_ms: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "{s:?} is not a duration, expected a number and a unit such as \"5s\", \"5m\" or \"1h\""
            ));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let ms_per_unit: u128 = match unit.trim() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "{s:?} has no unit, expected one of ms, s, m, h, d (e.g. \"{number}s\")"
                ))
            }
            other => {
                return Err(format!(
                    "{s:?} has unknown unit {other:?}, expected one of ms, s, m, h, d"
                ))
            }
        };
        let n: u128 = number.parse().map_err(|_| format!("{s:?} is too large"))?;
        total_ms = total_ms
            .checked_add(n.saturating_mul(ms_per_unit))
            .ok_or_else(|| format!("{s:?} is too large"))?;
        rest = next;
    }
    let ms = u64::try_from(total_ms).map_err(|_| format!("{s:?} is too large"))?;
    Ok(Duration::from_millis(ms))
}

/// Parse an IPv4 or IPv6 prefix. A bare address is a /32 or /128. Host bits set below the
/// prefix length are an error that names the bits and suggests the clean prefix.
pub fn parse_ip_net(s: &str) -> Result<IpNet, String> {
    let (addr_text, len_text) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| {
        format!("{s:?} is not an IP prefix, expected an address or CIDR such as \"10.20.0.0/16\" or \"2001:db8::/32\"")
    })?;
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len_text {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max && !l.starts_with('+') => n,
            _ => return Err(format!("{s:?} has prefix length {l:?}, expected 0..={max}")),
        },
    };
    let bits = host_bits(addr, len);
    if bits != 0 {
        let (bits_shown, clean) = match addr {
            IpAddr::V4(a) => {
                let b = bits as u32;
                (
                    Ipv4Addr::from(b).to_string(),
                    IpAddr::V4(Ipv4Addr::from(u32::from(a) & !b)),
                )
            }
            IpAddr::V6(a) => (
                Ipv6Addr::from(bits).to_string(),
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & !bits)),
            ),
        };
        return Err(format!(
            "{s} has host bits set ({bits_shown}); did you mean {clean}/{len}?"
        ));
    }
    IpNet::new(addr, len).ok_or_else(|| format!("{s:?} is not a valid prefix"))
}

/// Parse a host pattern: an exact lower-case name (`api.partner.example`) or a suffix wildcard
/// (`*.cro.example.de`, which matches strict subdomains only).
pub fn parse_host_pattern(s: &str) -> Result<HostPattern, String> {
    let (wildcard, name) = match s.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if name.is_empty() {
        return Err(format!(
            "{s:?} is not a host name, expected a name such as \"api.partner.example\" or \"*.partner.example\""
        ));
    }
    if name.contains('*') {
        return Err(format!(
            "{s:?} has '*' in the wrong place, expected it only as a leading \"*.\" label"
        ));
    }
    if name.len() > 253 {
        return Err(format!(
            "{s:?} is {} characters long, expected at most 253",
            name.len()
        ));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{s:?} has upper-case letters, expected lower case: {:?}",
            s.to_ascii_lowercase()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!(
                "{s:?} has an empty label, expected labels separated by single dots"
            ));
        }
        if label.len() > 63 {
            return Err(format!(
                "{s:?} has a label of {} characters, expected at most 63",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "{s:?} has the character {c:?} in label {label:?}, expected only a-z, 0-9 and '-'"
            ));
        }
    }
    Ok(if wildcard {
        HostPattern::Suffix(name.to_string())
    } else {
        HostPattern::Exact(name.to_string())
    })
}

/// Whether a destination string should be read as a prefix rather than a host name.
pub fn looks_like_ip(s: &str) -> bool {
    s.contains(':')
        || s.contains('/')
        || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// Parse a service: `any`, `tcp/443`, `udp/500-510` (inclusive range, first <= last).
pub fn parse_service(s: &str) -> Result<Service, String> {
    if s == "any" {
        return Ok(Service::Any);
    }
    let expected =
        "expected \"any\", \"tcp/PORT\", \"udp/PORT\" or a range such as \"udp/500-510\"";
    let Some((proto, ports)) = s.split_once('/') else {
        return Err(format!("{s:?} is not a service, {expected}"));
    };
    let transport = match proto {
        "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        other => {
            return Err(format!(
                "{s:?} has protocol {other:?}, expected \"tcp\" or \"udp\" (lower case)"
            ))
        }
    };
    let port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 && !p.starts_with('+') => Ok(n),
            _ => Err(format!("{s:?} has port {p:?}, expected 1..=65535")),
        }
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    if first > last {
        return Err(format!(
            "{s:?} has its range reversed ({first} > {last}), expected first <= last: \"{proto}/{last}-{first}\""
        ));
    }
    Ok(Service::Ports {
        transport,
        first,
        last,
    })
}

/// Parse a calendar date written `YYYY-MM-DD`.
pub fn parse_date_text(s: &str) -> Result<crate::time::Date, String> {
    let expected = "expected a date such as \"2027-02-06\"";
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(format!("{s:?} is not a date, {expected}"));
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    match (num(0..4), num(5..7), num(8..10)) {
        (Some(y), Some(m), Some(d)) => crate::time::Date::new(y as i32, m as u8, d as u8)
            .ok_or_else(|| format!("{s:?} is not a calendar date, {expected}")),
        _ => Err(format!("{s:?} is not a date, {expected}")),
    }
}

/// Parse a date or an inclusive range of dates, `"2027-02-06..2027-02-13"`.
pub fn parse_date_range(s: &str) -> Result<(crate::time::Date, crate::time::Date), String> {
    match s.split_once("..") {
        None => parse_date_text(s).map(|d| (d, d)),
        Some((a, b)) => {
            let (a, b) = (parse_date_text(a)?, parse_date_text(b)?);
            if a > b {
                return Err(format!(
                    "{s:?} ends before it starts, expected FIRST..LAST with FIRST <= LAST"
                ));
            }
            Ok((a, b))
        }
    }
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Index of a day name (`mon` = 0 .. `sun` = 6).
pub fn parse_day(s: &str) -> Result<u8, String> {
    DAY_NAMES
        .iter()
        .position(|d| *d == s)
        .map(|p| p as u8)
        .ok_or_else(|| {
            format!("{s:?} is not a day, expected one of mon, tue, wed, thu, fri, sat, sun")
        })
}

/// Parse window days given as one string: `"daily"`, a single day `"mon"`, or a range
/// `"mon-fri"` (a range may wrap past Sunday: `"fri-mon"`). Returns the day bit mask.
pub fn parse_days(s: &str) -> Result<u8, String> {
    if s == "daily" {
        return Ok(0x7f);
    }
    match s.split_once('-') {
        Some((a, b)) => {
            let (first, last) = (parse_day(a)?, parse_day(b)?);
            let mut mask = 0u8;
            let mut d = first;
            loop {
                mask |= 1 << d;
                if d == last {
                    break;
                }
                d = (d + 1) % 7;
            }
            Ok(mask)
        }
        None => parse_day(s).map(|d| 1 << d).map_err(|_| {
            format!("{s:?} is not a day set, expected \"daily\", a day such as \"mon\", a range such as \"mon-fri\", or a list [\"mon\", \"wed\"]")
        }),
    }
}

/// Parse window hours `"HH:MM-HH:MM"` to (start minute, end minute), both in 0..1440. Times run
/// from 00:00 to 24:00 (24:00 only as the end, returned as minute 0); the end may be earlier than
/// the start (crosses midnight); `00:00-24:00` gives equal start and end, the whole day.
pub fn parse_hours(s: &str) -> Result<(u16, u16), String> {
    let expected = "expected \"HH:MM-HH:MM\" such as \"08:00-20:00\" or \"22:00-06:00\"";
    let Some((a, b)) = s.split_once('-') else {
        return Err(format!("{s:?} is not an hour range, {expected}"));
    };
    let minute = |t: &str| -> Result<u16, String> {
        let bad = || format!("{s:?} has time {t:?}, {expected} with times 00:00..24:00");
        let (h, m) = t.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    let start = minute(a.trim())?;
    let end = minute(b.trim())?;
    if start == 24 * 60 {
        return Err(format!(
            "{s:?} starts at 24:00, expected a start of 00:00..23:59"
        ));
    }
    if start == end {
        return Err(format!(
            "{s:?} is an empty window, expected different start and end (\"00:00-24:00\" for the whole day)"
        ));
    }
    // 24:00 is midnight of the next day: minute 0, as `Window` counts minutes of a day
    // (`00:00-24:00` becomes equal start and end, the whole day).
    Ok((start, end % (24 * 60)))
}

/// ISO 3166-1 alpha-2 codes (officially assigned, 249).
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU \
ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ \
LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA \
RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU \
WF WS YE YT ZA ZM ZW";

/// Check an ISO 3166-1 alpha-2 country code (upper case, officially assigned).
pub fn check_country(s: &str) -> Result<(), String> {
    let upper = s.to_ascii_uppercase();
    if s.len() == 2 && upper != s && is_country(&upper) {
        return Err(format!(
            "{s:?} is not upper case, expected an ISO 3166-1 alpha-2 code: \"{upper}\""
        ));
    }
    if s == "UK" {
        return Err(
            "\"UK\" is not an ISO 3166-1 alpha-2 code, expected \"GB\" for the United Kingdom"
                .to_string(),
        );
    }
    if !is_country(s) {
        return Err(format!(
            "{s:?} is not an ISO 3166-1 alpha-2 country code, expected two upper-case letters such as \"DE\" or \"SG\""
        ));
    }
    Ok(())
}

fn is_country(s: &str) -> bool {
    s.len() == 2 && COUNTRIES.split(' ').any(|c| c == s)
}

/// Whether a gateway id matches `[a-z0-9][a-z0-9_-]*`.
pub fn valid_gateway_id(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit() => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Decode a hex string (even length, `0-9a-fA-F`).
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |b: u8| -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("20 GiB"), Ok(20 << 30));
        assert_eq!(parse_byte_size("500 MB"), Ok(500_000_000));
        assert_eq!(parse_byte_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert_eq!(parse_byte_size("1.5 KiB"), Ok(1536));
        assert_eq!(parse_byte_size("1 KB"), Ok(1000));
        assert_eq!(parse_byte_size("64 MiB"), Ok(64 << 20));
        assert!(parse_byte_size("20 gib")
            .expect_err("unit is case sensitive")
            .contains("unknown unit"));
        assert!(parse_byte_size("GiB").is_err());
        assert!(parse_byte_size("1.5").is_err());
        assert!(parse_byte_size("1..5 GB").is_err());
        assert!(parse_byte_size("99999999999 TiB")
            .expect_err("overflow")
            .contains("too large"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5")
            .expect_err("no unit")
            .contains("no unit"));
        assert!(parse_duration("5x")
            .expect_err("bad unit")
            .contains("unknown unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn prefixes() {
        let n = parse_ip_net("10.20.0.0/16").expect("valid");
        assert_eq!(n.to_string(), "10.20.0.0/16");
        assert_eq!(parse_ip_net("10.1.2.3").expect("bare").prefix_len(), 32);
        assert_eq!(parse_ip_net("2001:db8::1").expect("bare").prefix_len(), 128);
        assert_eq!(
            parse_ip_net("10.20.3.0/16").expect_err("host bits"),
            "10.20.3.0/16 has host bits set (0.0.3.0); did you mean 10.20.0.0/16?"
        );
        assert_eq!(
            parse_ip_net("2001:db8::1/32").expect_err("host bits"),
            "2001:db8::1/32 has host bits set (::1); did you mean 2001:db8::/32?"
        );
        assert!(parse_ip_net("10.0.0.0/33").is_err());
        assert!(parse_ip_net("10.0.0/8").is_err());
        assert!(parse_ip_net("fd00::/129").is_err());
    }

    #[test]
    fn host_patterns() {
        assert_eq!(
            parse_host_pattern("*.cro.example.de"),
            Ok(HostPattern::Suffix("cro.example.de".into()))
        );
        assert_eq!(
            parse_host_pattern("api.partner.example"),
            Ok(HostPattern::Exact("api.partner.example".into()))
        );
        for bad in [
            "API.example",
            "a..example",
            "a.*.example",
            "*",
            "*.",
            "a_b.example",
            ".example",
            "example.",
        ] {
            assert!(parse_host_pattern(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn services() {
        assert_eq!(parse_service("any"), Ok(Service::Any));
        assert_eq!(
            parse_service("udp/500-510"),
            Ok(Service::Ports {
                transport: Transport::Udp,
                first: 500,
                last: 510
            })
        );
        assert!(parse_service("tcp/510-500")
            .expect_err("reversed")
            .contains("reversed"));
        assert!(parse_service("sctp/1").is_err());
        assert!(parse_service("tcp/0").is_err());
        assert!(parse_service("tcp/65536").is_err());
        assert!(parse_service("TCP/443").is_err());
    }

    #[test]
    fn windows() {
        assert_eq!(parse_days("mon-fri"), Ok(0b0011111));
        assert_eq!(parse_days("fri-mon"), Ok(0b1110001));
        assert_eq!(parse_days("daily"), Ok(0x7f));
        assert_eq!(parse_days("sun"), Ok(0b1000000));
        assert!(parse_days("weekdays").is_err());
        assert_eq!(parse_hours("08:00-20:00"), Ok((480, 1200)));
        assert_eq!(parse_hours("22:00-06:00"), Ok((1320, 360)));
        assert_eq!(parse_hours("00:00-24:00"), Ok((0, 0)));
        assert_eq!(parse_hours("22:00-24:00"), Ok((1320, 0)));
        for bad in [
            "8:00-20:00",
            "08:00-24:01",
            "24:00-06:00",
            "08:60-09:00",
            "08:00-08:00",
            "0800-2000",
        ] {
            assert!(parse_hours(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn countries() {
        assert!(check_country("DE").is_ok());
        assert!(check_country("SG").is_ok());
        assert!(check_country("de").expect_err("lower").contains("\"DE\""));
        assert!(check_country("UK").expect_err("UK").contains("GB"));
        assert!(check_country("XX").is_err());
        assert_eq!(COUNTRIES.split(' ').count(), 249);
    }

    #[test]
    fn gateway_ids_and_hex() {
        assert!(valid_gateway_id("gw-bj-01"));
        assert!(valid_gateway_id("0_a"));
        assert!(!valid_gateway_id("-gw"));
        assert!(!valid_gateway_id("GW"));
        assert!(!valid_gateway_id(""));
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0g"), None);
        assert_eq!(decode_hex("abc"), None);
    }
}
