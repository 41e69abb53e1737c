//! Property tests: the value parsers and the registry loader never panic on arbitrary input,
//! accepted values round-trip, and every diagnostic points inside the file.

use crossline_config::load::parse_registry;
use crossline_config::parse::{
    parse_byte_size, parse_days, parse_duration, parse_host_pattern, parse_hours, parse_ip_net,
    parse_service,
};
use crossline_config::time::Date;
use proptest::prelude::*;
use std::path::Path;

const BASE: &str = r#"[[enterprise]]
id = "acme"
name = "Acme Pharma (Beijing) Co., Ltd."
uscc = "91350100M000100Y43"

[[scenario]]
id = "SA-1"
enterprise = "acme"
basis = "security_assessment"
filing_ref = "F-1"
recipient = { name = "Example CRO GmbH", country = "DE" }
activity = "academic_cooperation"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.20.0.0/16"]
destinations = ["*.cro.example.de", "198.51.100.0/24"]
services = ["tcp/443", "udp/500-510"]
window = { days = "mon-fri", hours = "22:00-06:00" }
caps = { bytes_per_day = "20 GiB" }
persons_per_year = 150000
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn value_parsers_never_panic(s in "\\PC{0,40}") {
        let _ = parse_byte_size(&s);
        let _ = parse_duration(&s);
        let _ = parse_ip_net(&s);
        let _ = parse_host_pattern(&s);
        let _ = parse_service(&s);
        let _ = parse_hours(&s);
        let _ = parse_days(&s);
    }

    #[test]
    fn prefixes_round_trip(a in any::<u32>(), len in 0u8..=32) {
        let masked = if len == 0 { 0 } else { a & (u32::MAX << (32 - u32::from(len))) };
        let text = format!("{}/{len}", std::net::Ipv4Addr::from(masked));
        let net = parse_ip_net(&text).expect("clean prefix");
        prop_assert_eq!(net.to_string(), text);
        if masked != a {
            let dirty = format!("{}/{len}", std::net::Ipv4Addr::from(a));
            let err = parse_ip_net(&dirty).expect_err("host bits");
            let expected = format!("did you mean {}/{len}?", std::net::Ipv4Addr::from(masked));
            prop_assert!(err.ends_with(&expected), "{}", err);
        }
    }

    #[test]
    fn durations_and_sizes_round_trip(n in 0u64..1_000_000, unit in 0usize..4) {
        let (suffix, secs) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)][unit];
        prop_assert_eq!(
            parse_duration(&format!("{n}{suffix}")),
            Ok(std::time::Duration::from_secs(n * secs))
        );
        let (suffix, mult) = [("KB", 1000u64), ("KiB", 1024), ("MB", 1_000_000), ("GiB", 1 << 30)][unit];
        prop_assert_eq!(parse_byte_size(&format!("{n} {suffix}")), Ok(n * mult));
    }

    #[test]
    fn loader_never_panics_and_points_inside_the_file(
        edits in prop::collection::vec((0usize..BASE.len(), "\\PC{0,6}"), 1..4)
    ) {
        let mut text = BASE.to_string();
        for (at, insert) in edits {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.insert_str(at, &insert);
        }
        let today = Date::new(2026, 11, 27).expect("valid");
        let lines = text.lines().count().max(1);
        match parse_registry(Path::new("r.toml"), &text, &[], today) {
            Ok((_, warnings)) => {
                for w in warnings {
                    prop_assert!(w.line >= 1 && w.line <= lines + 1 && w.column >= 1);
                }
            }
            Err(e) => {
                prop_assert!(!e.errors.is_empty());
                for d in e.errors {
                    prop_assert!(d.line >= 1 && d.line <= lines + 1 && d.column >= 1, "{}", d);
                    prop_assert!(!d.message.is_empty());
                }
            }
        }
    }
}
