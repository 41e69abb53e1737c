//! Validation of `registry.toml` and `agent.toml`: every rule has a bad file and an assertion on
//! the exact line, column and key words of the message. Files are written to a fresh temporary
//! folder and read back through the public loaders, as the agent does.

use crossline_config::registry::IpNet;
use crossline_config::time::{Date, LocalTime};
use crossline_config::{load_agent_config, load_registry, Diagnostic};
use std::path::{Path, PathBuf};

fn today() -> Date {
    Date::new(2026, 11, 27).expect("valid date")
}

fn domestic() -> Vec<IpNet> {
    vec![
        crossline_config::parse::parse_ip_net("10.0.0.0/8").expect("valid"),
        crossline_config::parse::parse_ip_net("fd00::/8").expect("valid"),
    ]
}

/// A fresh, empty folder under the system temp dir, removed when dropped (also when the test
/// fails).
fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("crossline-config-test-")
        .tempdir()
        .expect("create temp dir")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

/// A valid registry; tests replace single lines of it (line numbers in the comments).
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
services = ["tcp/443"]
window = { days = "mon-fri", hours = "08:00-20:00" }
caps = { bytes_per_day = "20 GiB" }
persons_per_year = 150000
"#;

/// BASE with line `line` (1-based) replaced by `text` (which may hold several lines), or with
/// `text` appended when `line` is 0.
fn edit(line: usize, text: &str) -> String {
    if line == 0 {
        return format!("{BASE}{text}");
    }
    let mut lines: Vec<&str> = BASE.lines().collect();
    lines[line - 1] = text;
    lines.join("\n") + "\n"
}

fn registry_result(
    text: &str,
) -> Result<(crossline_config::Registry, Vec<Diagnostic>), Vec<Diagnostic>> {
    let scratch = temp_dir();
    let dir = scratch.path();
    let path = write(dir, "registry.toml", text);
    load_registry(&path, &domestic(), today()).map_err(|e| e.errors)
}

fn registry_errors(text: &str) -> Vec<Diagnostic> {
    match registry_result(text) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

#[test]
fn base_registry_is_valid() {
    let (reg, warnings) = registry_result(BASE).expect("BASE is valid");
    assert_eq!(reg.enterprises.len(), 1);
    assert_eq!(reg.scenarios.len(), 1);
    assert!(warnings.is_empty(), "{warnings:?}");
    let s = &reg.scenarios[0];
    assert_eq!(s.bytes_per_day, Some(20 << 30));
    assert_eq!(s.persons_per_year, Some(150_000));
    assert_eq!(s.sources[0].to_string(), "10.20.0.0/16");
    assert_eq!(s.destinations.len(), 2);
}

struct Case {
    name: &'static str,
    line: usize,
    text: &'static str,
    at: (usize, usize),
    words: &'static [&'static str],
}

const fn case(
    name: &'static str,
    line: usize,
    text: &'static str,
    at: (usize, usize),
    words: &'static [&'static str],
) -> Case {
    Case {
        name,
        line,
        text,
        at,
        words,
    }
}

const APPEND_ENTERPRISE: &str = r#"
[[enterprise]]
id = "acme"
name = "Acme Again"
uscc = "91350100M000100Y43"
"#;

const APPEND_SCENARIO: &str = r#"
[[scenario]]
id = "SA-1"
enterprise = "acme"
basis = "standard_contract"
filing_ref = "F-2"
recipient = { name = "Other", country = "FR" }
activity = "x"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.21.0.0/16"]
destinations = ["other.example"]
"#;

const REGISTRY_CASES: &[Case] = &[
    case(
        "uscc check char",
        4,
        r#"uscc = "91350100M000100Y44""#,
        (4, 8),
        &[
            "enterprise.uscc",
            "91350100M000100Y44",
            "check character (position 18) is wrong, expected '3'",
        ],
    ),
    case(
        "uscc organisation check",
        4,
        r#"uscc = "91350100M000100Y53""#,
        (4, 8),
        &[
            "organisation code check character (position 17)",
            "expected '4'",
        ],
    ),
    case(
        "uscc character",
        4,
        r#"uscc = "91350100M0001I0Y43""#,
        (4, 8),
        &["character 14", "without I, O, S, V, Z"],
    ),
    case(
        "uscc length",
        4,
        r#"uscc = "9135""#,
        (4, 8),
        &["has 4 characters, expected 18"],
    ),
    case(
        "duplicate enterprise",
        0,
        APPEND_ENTERPRISE,
        (24, 6),
        &["duplicate id \"acme\"", "first defined on line 2"],
    ),
    case(
        "duplicate scenario",
        0,
        APPEND_SCENARIO,
        (24, 6),
        &[
            "scenario.id",
            "duplicate id \"SA-1\"",
            "first defined on line 7",
        ],
    ),
    case(
        "unknown enterprise",
        8,
        r#"enterprise = "acme-x""#,
        (8, 14),
        &["unknown enterprise \"acme-x\"", "(acme)"],
    ),
    case(
        "unknown basis",
        9,
        r#"basis = "assessment""#,
        (9, 9),
        &[
            "basis: unknown basis \"assessment\"",
            "security_assessment, standard_contract",
        ],
    ),
    case(
        "exemption missing",
        9,
        r#"basis = "exemption""#,
        (9, 9),
        &["needs an `exemption` key", "art5_small"],
    ),
    case(
        "exemption without basis",
        10,
        "exemption = \"art3\"\nfiling_ref = \"F-1\"",
        (10, 13),
        &["exemption: \"art3\" given with basis \"security_assessment\""],
    ),
    case(
        "exemption unknown",
        9,
        "basis = \"exemption\"\nexemption = \"art6\"",
        (10, 13),
        &["unknown article \"art6\"", "art3, art4, art5_contract"],
    ),
    case(
        "data unknown",
        13,
        r#"data = ["personal", "secret"]"#,
        (13, 21),
        &["data: unknown category \"secret\"", "sensitive_personal"],
    ),
    case(
        "data none combined",
        13,
        r#"data = ["none", "personal"]"#,
        (13, 8),
        &["\"none\" is combined"],
    ),
    case(
        "data empty",
        13,
        r#"data = []"#,
        (13, 8),
        &["data: empty list"],
    ),
    case(
        "host bits",
        16,
        r#"sources = ["10.20.3.0/16"]"#,
        (16, 12),
        &["sources: 10.20.3.0/16 has host bits set (0.0.3.0); did you mean 10.20.0.0/16?"],
    ),
    case(
        "ipv6 host bits",
        16,
        r#"sources = ["fd00:20::1/32"]"#,
        (16, 12),
        &["has host bits set (::1); did you mean fd00:20::/32?"],
    ),
    case(
        "prefix length",
        17,
        r#"destinations = ["2001:db8::/129"]"#,
        (17, 17),
        &["prefix length \"129\"", "0..=128"],
    ),
    case(
        "not an address",
        16,
        r#"sources = ["10.20.0/16"]"#,
        (16, 12),
        &["not an IP prefix"],
    ),
    case(
        "source outside domestic",
        16,
        r#"sources = ["10.20.0.0/16", "192.168.1.0/24"]"#,
        (16, 28),
        &[
            "192.168.1.0/24 is not inside any domestic prefix",
            "10.0.0.0/8, fd00::/8",
        ],
    ),
    case(
        "sources empty",
        16,
        r#"sources = []"#,
        (16, 11),
        &["sources: empty list"],
    ),
    case(
        "host upper case",
        17,
        r#"destinations = ["API.partner.example"]"#,
        (17, 17),
        &["upper-case", "\"api.partner.example\""],
    ),
    case(
        "host wildcard inside",
        17,
        r#"destinations = ["api.*.example"]"#,
        (17, 17),
        &["'*' in the wrong place"],
    ),
    case(
        "host empty label",
        17,
        r#"destinations = ["ok.example", "a..example"]"#,
        (17, 31),
        &["empty label"],
    ),
    case(
        "host bad char",
        17,
        r#"destinations = ["a_b.example"]"#,
        (17, 17),
        &["character '_'", "a-z, 0-9 and '-'"],
    ),
    case(
        "destinations empty",
        17,
        r#"destinations = []"#,
        (17, 16),
        &["destinations: empty list"],
    ),
    case(
        "service port",
        18,
        r#"services = ["tcp/70000"]"#,
        (18, 13),
        &["port \"70000\"", "1..=65535"],
    ),
    case(
        "service range reversed",
        18,
        r#"services = ["tcp/443", "udp/510-500"]"#,
        (18, 24),
        &["reversed (510 > 500)", "udp/500-510"],
    ),
    case(
        "service protocol",
        18,
        r#"services = ["icmp/1"]"#,
        (18, 13),
        &["protocol \"icmp\"", "\"tcp\" or \"udp\""],
    ),
    case(
        "service shape",
        18,
        r#"services = ["443"]"#,
        (18, 13),
        &["not a service", "\"any\""],
    ),
    case(
        "until before from",
        15,
        "valid_until = 2025-12-31",
        (15, 15),
        &["valid_until: 2025-12-31 is before valid_from 2026-01-01"],
    ),
    case(
        "date as string",
        14,
        r#"valid_from = "2026-01-01""#,
        (14, 14),
        &["valid_from: \"2026-01-01\" is a string", "without quotes"],
    ),
    case(
        "date with time",
        14,
        "valid_from = 2026-01-01T00:00:00",
        (14, 14),
        &["is not a date"],
    ),
    case(
        "window days",
        19,
        r#"window = { days = "weekdays", hours = "08:00-20:00" }"#,
        (19, 19),
        &["window.days", "\"weekdays\"", "mon-fri"],
    ),
    case(
        "window day list",
        19,
        r#"window = { days = ["mon", "funday"] }"#,
        (19, 19),
        &["\"funday\" is not a day"],
    ),
    case(
        "window hours",
        19,
        r#"window = { days = "mon-fri", hours = "08:00-25:00" }"#,
        (19, 38),
        &["window.hours", "\"08:00-25:00\"", "00:00..24:00"],
    ),
    case(
        "window empty",
        19,
        r#"window = { hours = "08:00-08:00" }"#,
        (19, 20),
        &["empty window", "00:00-24:00"],
    ),
    case(
        "byte size",
        20,
        r#"caps = { bytes_per_day = "20 gigabytes" }"#,
        (20, 26),
        &["caps.bytes_per_day", "unknown unit \"gigabytes\"", "GiB"],
    ),
    case(
        "country lower case",
        11,
        r#"recipient = { name = "Example CRO GmbH", country = "de" }"#,
        (11, 52),
        &["recipient.country", "not upper case", "\"DE\""],
    ),
    case(
        "country unknown",
        11,
        r#"recipient = { name = "Example CRO GmbH", country = "UK" }"#,
        (11, 52),
        &["\"GB\""],
    ),
    case(
        "persons",
        21,
        "persons_per_year = 0",
        (21, 20),
        &["persons_per_year: 0 is out of range"],
    ),
    case(
        "empty text",
        10,
        r#"filing_ref = """#,
        (10, 14),
        &["filing_ref: empty value"],
    ),
    case(
        "unknown key",
        21,
        "colour = \"red\"",
        (21, 1),
        &["unknown field `colour`", "persons_per_year"],
    ),
    case("syntax", 21, "persons_per_year = ", (21, 20), &["expected"]),
    case(
        "missing key",
        10,
        "# no filing_ref",
        (6, 1),
        &["missing field `filing_ref`"],
    ),
];

#[test]
fn every_registry_rule_has_a_located_error() {
    let mut failures = Vec::new();
    for c in REGISTRY_CASES {
        let errors = registry_errors(&edit(c.line, c.text));
        let Some(first) = errors.first() else {
            failures.push(format!("{}: no error", c.name));
            continue;
        };
        if errors.len() != 1 {
            failures.push(format!(
                "{}: expected exactly one error, got {errors:#?}",
                c.name
            ));
        }
        if (first.line, first.column) != c.at {
            failures.push(format!(
                "{}: at {}:{}, expected {}:{} ({})",
                c.name, first.line, first.column, c.at.0, c.at.1, first.message
            ));
        }
        for w in c.words {
            if !first.message.contains(w) {
                failures.push(format!(
                    "{}: message {:?} lacks {w:?}",
                    c.name, first.message
                ));
            }
        }
        assert!(first.file.ends_with("registry.toml"));
        let shown = first.to_string();
        assert!(
            shown.contains(&format!("registry.toml:{}:{}: ", first.line, first.column)),
            "{shown}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn five_mistakes_give_five_errors_in_line_order() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/bad/five-mistakes.registry.toml"
    ));
    let errors = load_registry(path, &domestic(), today())
        .expect_err("five mistakes")
        .errors;
    let got: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        got,
        vec![(4, 8), (9, 9), (13, 12), (15, 17), (16, 13)],
        "{errors:#?}"
    );
    assert!(errors[0].message.contains("check character"));
    assert!(errors[1]
        .message
        .contains("unknown basis \"security-assessment\""));
    assert!(errors[1]
        .message
        .ends_with("; did you mean \"security_assessment\"?"));
    assert!(errors[2].message.contains("host bits set"));
    assert!(errors[3].message.contains("upper-case"));
    assert!(errors[4].message.contains("tcp/65536"));
}

#[test]
fn duplicate_coverage_warning_is_order_insensitive() {
    let twin = r#"
[[scenario]]
id = "SA-2"
enterprise = "acme"
basis = "standard_contract"
filing_ref = "F-2"
recipient = { name = "Other", country = "FR" }
activity = "x"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.20.0.0/16"]
destinations = ["198.51.100.0/24", "*.cro.example.de"]
services = ["tcp/443"]
"#;
    let (reg, warnings) = registry_result(&edit(0, twin)).expect("warnings are not errors");
    assert_eq!(reg.scenarios.len(), 2);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let w = &warnings[0];
    assert_eq!((w.line, w.column), (24, 6));
    assert!(w.message.starts_with("warning: "));
    assert!(w.message.contains(
        "\"SA-2\" has the same sources, destinations and services as scenario \"SA-1\" (line 7)"
    ));

    // A different service is a different scenario: no warning.
    let other = twin.replace("tcp/443", "tcp/8443");
    let (_, warnings) = registry_result(&edit(0, &other)).expect("valid");
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[test]
fn expiry_warning_within_sixty_days() {
    // 2027-01-15 is 49 days after 2026-11-27; 2027-01-27 is 61 days after.
    let (_, warnings) = registry_result(&edit(15, "valid_until = 2027-01-15")).expect("valid");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!((warnings[0].line, warnings[0].column), (7, 6));
    assert!(warnings[0]
        .message
        .contains("expires on 2027-01-15, in 49 days"));
    let (_, warnings) = registry_result(&edit(15, "valid_until = 2027-01-26")).expect("valid");
    assert!(warnings[0].message.contains("in 60 days"), "{warnings:#?}");
    let (_, warnings) = registry_result(&edit(15, "valid_until = 2027-01-27")).expect("valid");
    assert!(warnings.is_empty(), "{warnings:#?}");
    let (_, warnings) = registry_result(&edit(15, "valid_until = 2026-11-26")).expect("valid");
    assert!(
        warnings[0].message.contains("expired on 2026-11-26"),
        "{warnings:#?}"
    );
}

#[test]
fn exemption_articles_and_bases_are_read() {
    use crossline_config::registry::{Basis, Exemption};
    for (text, basis) in [
        ("art3", Exemption::Art3),
        ("art4", Exemption::Art4),
        ("art5_contract", Exemption::Art5Contract),
        ("art5_hr", Exemption::Art5Hr),
        ("art5_emergency", Exemption::Art5Emergency),
        ("art5_small", Exemption::Art5Small),
    ] {
        let file = edit(9, &format!("basis = \"exemption\"\nexemption = \"{text}\""));
        let (reg, _) = registry_result(&file).expect("valid");
        assert_eq!(reg.scenarios[0].basis, Basis::Exemption(basis));
    }
    for basis in ["standard_contract", "certification", "ftz_negative_list"] {
        let (reg, _) = registry_result(&edit(9, &format!("basis = \"{basis}\""))).expect("valid");
        assert_eq!(reg.scenarios[0].basis.as_str(), basis);
    }
}

fn window_of(line: &str) -> crossline_config::registry::Window {
    let (reg, _) = registry_result(&edit(19, line)).expect("valid window");
    reg.scenarios[0].window.expect("window present")
}

fn at(date: Date, h: u32, m: u32, s: u32) -> LocalTime {
    LocalTime {
        date,
        second_of_day: h * 3600 + m * 60 + s,
    }
}

#[test]
fn window_semantics() {
    // 2026-11-27 is a Friday.
    let fri = today();
    assert_eq!(fri.weekday(), 4);
    let day = |n: i64| Date::from_days(fri.days_since_epoch() + n);
    let (thu, sat, mon) = (day(-1), day(1), day(3));

    let office = window_of(r#"window = { days = "mon-fri", hours = "08:00-20:00" }"#);
    assert!(!office.allows(at(mon, 7, 59, 59)));
    assert!(office.allows(at(mon, 8, 0, 0)));
    assert!(office.allows(at(fri, 19, 59, 59)));
    assert!(!office.allows(at(fri, 20, 0, 0)));
    assert!(!office.allows(at(sat, 12, 0, 0)));

    // Crosses midnight: the night belongs to the day it starts on.
    let night = window_of(r#"window = { days = ["fri"], hours = "22:00-06:00" }"#);
    assert!(!night.allows(at(fri, 21, 59, 59)));
    assert!(night.allows(at(fri, 22, 0, 0)));
    assert!(night.allows(at(fri, 23, 59, 59)));
    assert!(night.allows(at(sat, 0, 0, 0)));
    assert!(night.allows(at(sat, 5, 59, 59)));
    assert!(!night.allows(at(sat, 6, 0, 0)));
    assert!(!night.allows(at(sat, 22, 0, 0)));
    assert!(
        !night.allows(at(fri, 0, 0, 0)),
        "Thursday night is not listed"
    );
    assert!(!night.allows(at(thu, 23, 59, 59)));

    let whole = window_of(r#"window = { days = "sat-sun", hours = "00:00-24:00" }"#);
    assert!(whole.allows(at(sat, 0, 0, 0)));
    assert!(whole.allows(at(day(2), 23, 59, 59)));
    assert!(!whole.allows(at(mon, 0, 0, 0)));
    assert!(!whole.allows(at(fri, 23, 59, 59)));

    let late = window_of(r#"window = { days = "fri", hours = "22:00-24:00" }"#);
    assert!(!late.allows(at(fri, 21, 59, 59)));
    assert!(late.allows(at(fri, 22, 0, 0)));
    assert!(late.allows(at(fri, 23, 59, 59)));
    assert!(!late.allows(at(sat, 0, 0, 0)));

    // Days only: the whole day.
    let daily = window_of(r#"window = { days = "daily" }"#);
    assert!(daily.allows(at(thu, 23, 59, 59)) && daily.allows(at(sat, 0, 0, 0)));
}

// ---------------------------------------------------------------------------------------------
// agent.toml
// ---------------------------------------------------------------------------------------------

const AGENT_BASE: &str = r#"gateway = "gw-bj-01"
domestic = ["10.0.0.0/8", "fd00::/8"]
registry = "registry.toml"

[capture]
udp_timeout = "60s"
buffer_bytes = "64 MiB"

[uplink]
collector = "https://collector.example:7443"
ca = "pki/ca.pem"
cert = "pki/gw.pem"
key = "pki/gw.key"
fsync = "1s"

[metrics]
listen = "127.0.0.1:9184"

[detect]
pi_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

[[detect.signature]]
id = "sig-1"
kind = "negative_list"
pattern = "VIN_BATCH"
category = "auto/vin"
approved_scenarios = ["SA-1"]
"#;

fn agent_edit(line: usize, text: &str) -> String {
    let mut lines: Vec<&str> = AGENT_BASE.lines().collect();
    lines[line - 1] = text;
    lines.join("\n") + "\n"
}

fn agent_result(
    agent: &str,
    registry: &str,
) -> Result<(crossline_config::AgentConfig, Vec<Diagnostic>), Vec<Diagnostic>> {
    let scratch = temp_dir();
    let dir = scratch.path();
    write(dir, "registry.toml", registry);
    let path = write(dir, "agent.toml", agent);
    load_agent_config(&path, today()).map_err(|e| e.errors)
}

/// `capture.writer_nice` is read as written, at both ends of its range.
#[test]
fn writer_nice_is_read_at_both_ends_of_its_range() {
    for n in [0u8, 10, 19] {
        let (cfg, _) = agent_result(&agent_edit(7, &format!("writer_nice = {n}")), BASE)
            .unwrap_or_else(|e| panic!("writer_nice = {n}: {e:#?}"));
        assert_eq!(cfg.capture.writer_nice, n);
    }
}

/// `capture.stop_drain`: 2 s unless set, 0 allowed (stop at once), up to 30 s.
#[test]
fn stop_drain_defaults_to_two_seconds_and_takes_zero_to_thirty() {
    let (cfg, _) = agent_result(AGENT_BASE, BASE).expect("valid");
    assert_eq!(cfg.capture.stop_drain, std::time::Duration::from_secs(2));
    for (text, secs) in [("0s", 0), ("500ms", 0), ("30s", 30)] {
        let (cfg, _) = agent_result(&agent_edit(7, &format!("stop_drain = \"{text}\"")), BASE)
            .unwrap_or_else(|e| panic!("stop_drain = {text}: {e:#?}"));
        assert_eq!(cfg.capture.stop_drain.as_secs(), secs, "{text}");
    }
}

#[test]
fn base_agent_config_is_valid_and_paths_are_relative_to_the_file() {
    use crossline_config::agent::FsyncPolicy;
    let scratch = temp_dir();
    let dir = scratch.path();
    write(dir, "registry.toml", BASE);
    let path = write(dir, "agent.toml", AGENT_BASE);
    let (cfg, warnings) = load_agent_config(&path, today()).expect("valid");
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(cfg.gateway, "gw-bj-01");
    assert_eq!(cfg.registry_path, dir.join("registry.toml"));
    let up = cfg.uplink.expect("uplink");
    assert_eq!(up.ca, dir.join("pki/ca.pem"));
    assert_eq!(up.spool_dir, dir.join("spool"));
    assert_eq!(
        up.fsync,
        FsyncPolicy::Interval(std::time::Duration::from_secs(1))
    );
    assert_eq!(up.spool_max_bytes, 1 << 30);
    assert_eq!(cfg.detect.pi_key.len(), 32);
    assert_eq!(cfg.detect.signatures[0].approved_scenarios, vec!["SA-1"]);
    assert_eq!(cfg.capture.buffer_bytes, 64 << 20);
    assert_eq!(cfg.metrics.listen.map(|a| a.port()), Some(9184));
}

#[test]
fn uplink_collector_takes_one_url_or_a_list_in_order() {
    let (cfg, _) = agent_result(AGENT_BASE, BASE).expect("valid");
    assert_eq!(
        cfg.uplink.expect("uplink").collectors,
        vec!["https://collector.example:7443"]
    );
    let list = agent_edit(
        10,
        r#"collector = ["https://c2.example:7443", "https://[::1]:7444", "https://c1.example:7443"]"#,
    );
    let (cfg, _) = agent_result(&list, BASE).expect("valid");
    assert_eq!(
        cfg.uplink.expect("uplink").collectors,
        vec![
            "https://c2.example:7443",
            "https://[::1]:7444",
            "https://c1.example:7443"
        ]
    );
    let errors = agent_result(&agent_edit(10, "collector = 7443"), BASE).expect_err("a number");
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("collector URL") && e.line == 10),
        "{errors:#?}"
    );
}

#[test]
fn minimal_agent_config_gets_defaults_and_dev_key_warning() {
    let agent = "gateway = \"gw-1\"\ndomestic = [\"10.0.0.0/8\"]\nregistry = \"registry.toml\"\n";
    let (cfg, warnings) = agent_result(agent, BASE).expect("valid");
    assert!(cfg.uplink.is_none());
    assert_eq!(cfg.capture.snaplen, 65_535);
    assert_eq!(cfg.capture.writer_nice, 0);
    assert_eq!(
        cfg.detect.fold_interval,
        std::time::Duration::from_secs(300)
    );
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].message.contains("default development key"));
    assert!(warnings[0].file.ends_with("agent.toml"));
}

const AGENT_CASES: &[Case] = &[
    case(
        "stop drain too long",
        7,
        r#"stop_drain = "5m""#,
        (7, 14),
        &["capture.stop_drain: 300s is too long, expected at most 30s"],
    ),
    case(
        "writer nice out of range",
        7,
        "writer_nice = 20",
        (7, 15),
        &["capture.writer_nice: 20 is out of range, expected 0..=19"],
    ),
    case(
        "gateway id",
        1,
        r#"gateway = "GW-BJ-01""#,
        (1, 11),
        &["gateway: \"GW-BJ-01\" is not a valid gateway id"],
    ),
    case(
        "gateway id leading dash",
        1,
        r#"gateway = "-gw""#,
        (1, 11),
        &["not a valid gateway id"],
    ),
    case(
        "domestic empty",
        2,
        "domestic = []",
        (2, 12),
        &["domestic: empty list"],
    ),
    case(
        "domestic bad prefix",
        2,
        r#"domestic = ["10.0.0.0/8", "172.16.1.0/12"]"#,
        (2, 27),
        &["172.16.1.0/12 has host bits set (0.0.1.0); did you mean 172.16.0.0/12?"],
    ),
    case(
        "duration without unit",
        6,
        r#"udp_timeout = "60""#,
        (6, 15),
        &["capture.udp_timeout", "no unit"],
    ),
    case(
        "duration as integer",
        6,
        "udp_timeout = 60",
        (6, 15),
        &["not a duration", "\"5s\""],
    ),
    case(
        "community id seed",
        7,
        "community_id_seed = 70000",
        (7, 21),
        &["capture.community_id_seed", "70000", "0..=65535"],
    ),
    case(
        "dns cache larger than its start-up allocation allows",
        7,
        "dns_cache_entries = 100000000",
        (7, 21),
        &["capture.dns_cache_entries", "100000000", "16777216"],
    ),
    case(
        "byte size",
        7,
        r#"buffer_bytes = "64 MB/s""#,
        (7, 16),
        &["capture.buffer_bytes", "unknown unit"],
    ),
    case(
        "collector url",
        10,
        r#"collector = "collector.example:7443""#,
        (10, 13),
        &["uplink.collector", "https://HOST:PORT"],
    ),
    case(
        "collector list bad element",
        10,
        r#"collector = ["https://a.example:7443", "http://b.example:7443"]"#,
        (10, 40),
        &[
            "uplink.collector[1]: \"http://b.example:7443\"",
            "https://HOST:PORT",
        ],
    ),
    case(
        "collector list empty",
        10,
        "collector = []",
        (10, 13),
        &["uplink.collector: empty list"],
    ),
    case(
        "collector list repeats",
        10,
        r#"collector = ["https://a.example:7443", "https://a.example:7443"]"#,
        (10, 40),
        &["uplink.collector[1]", "listed twice"],
    ),
    case(
        "fsync",
        14,
        r#"fsync = "sometimes""#,
        (14, 9),
        &["uplink.fsync", "\"always\", \"never\""],
    ),
    case(
        "metrics listen",
        17,
        r#"listen = "localhost""#,
        (17, 10),
        &["metrics.listen", "IP:PORT"],
    ),
    case(
        "pi key empty",
        20,
        r#"pi_key = """#,
        (20, 10),
        &["detect.pi_key: empty key"],
    ),
    case(
        "signature kind",
        24,
        r#"kind = "blacklist""#,
        (24, 8),
        &["unknown kind \"blacklist\""],
    ),
    case(
        "signature scenario",
        27,
        r#"approved_scenarios = ["SA-1", "SA-9"]"#,
        (27, 31),
        &["unknown scenario \"SA-9\""],
    ),
    case(
        "registry missing",
        3,
        r#"registry = "nope/registry.toml""#,
        (3, 12),
        &[
            "registry: cannot read",
            "nope/registry.toml",
            "relative to this file's folder",
        ],
    ),
    case(
        "unknown section key",
        6,
        r#"udp_timout = "60s""#,
        (6, 1),
        &["unknown field `udp_timout`"],
    ),
];

#[test]
fn every_agent_rule_has_a_located_error() {
    let mut failures = Vec::new();
    for c in AGENT_CASES {
        let errors = match agent_result(&agent_edit(c.line, c.text), BASE) {
            Ok(_) => Vec::new(),
            Err(e) => e,
        };
        let Some(first) = errors.first() else {
            failures.push(format!("{}: no error", c.name));
            continue;
        };
        if errors.len() != 1 {
            failures.push(format!("{}: expected one error, got {errors:#?}", c.name));
        }
        if (first.line, first.column) != c.at {
            failures.push(format!(
                "{}: at {}:{}, expected {}:{} ({})",
                c.name, first.line, first.column, c.at.0, c.at.1, first.message
            ));
        }
        for w in c.words {
            if !first.message.contains(w) {
                failures.push(format!(
                    "{}: message {:?} lacks {w:?}",
                    c.name, first.message
                ));
            }
        }
        assert!(first.file.ends_with("agent.toml"), "{first}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_from_both_files_in_one_list() {
    let errors = agent_result(
        &agent_edit(1, r#"gateway = "Bad Gateway""#),
        &edit(4, r#"uscc = "91350100M000100Y44""#),
    )
    .expect_err("two errors");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].file.ends_with("agent.toml"));
    assert_eq!((errors[0].line, errors[0].column), (1, 11));
    assert!(errors[1].file.ends_with("registry.toml"));
    assert_eq!((errors[1].line, errors[1].column), (4, 8));
}

#[test]
fn registry_sources_are_checked_against_the_agent_domestic_prefixes() {
    let agent = agent_edit(2, r#"domestic = ["10.30.0.0/16"]"#);
    let errors = agent_result(&agent, BASE).expect_err("source outside");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!((errors[0].line, errors[0].column), (16, 12));
    assert!(errors[0].message.contains(
        "10.20.0.0/16 is not inside any domestic prefix, expected a prefix inside 10.30.0.0/16"
    ));
}

#[test]
fn shipped_examples_load() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/agent.toml"
    ));
    let (cfg, warnings) = load_agent_config(path, today()).expect("examples/agent.toml is valid");
    assert_eq!(cfg.gateway, "gw-bj-01");
    assert_eq!(cfg.domestic.len(), 2);
    assert_eq!(cfg.registry.enterprises.len(), 8);
    assert_eq!(cfg.registry.scenarios.len(), 16);
    assert_eq!(cfg.detect.signatures.len(), 2);
    let bases: std::collections::BTreeSet<_> =
        cfg.registry.scenarios.iter().map(|s| s.basis).collect();
    assert_eq!(
        bases.len(),
        10,
        "every basis and exemption article: {bases:?}"
    );
    // Exactly one filing expires within 60 days, plus the development key warning.
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings
        .iter()
        .any(|w| w.message.contains("CERT-2024-0009") && w.message.contains("2027-01-15")));
    assert!(warnings
        .iter()
        .any(|w| w.message.contains("development key")));
    // A year later every filing is still valid through 2027 except the expiring one.
    let later = Date::new(2027, 12, 1).expect("valid");
    let expired: Vec<_> = cfg
        .registry
        .scenarios
        .iter()
        .filter(|s| !s.valid_on(later))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(expired, vec!["CERT-2024-0009"]);
}

#[test]
fn check_command_exit_codes() {
    let good = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/agent.toml"
    ));
    assert_eq!(crossline_config::check_command(good, today()), 0);
    let scratch = temp_dir();
    let dir = scratch.path();
    write(dir, "registry.toml", BASE);
    let bad = write(dir, "agent.toml", &agent_edit(1, r#"gateway = """#));
    // 78 = EX_CONFIG (it was 2 before the exit statuses were documented).
    assert_eq!(crossline_config::check_command(&bad, today()), 78);
}

#[test]
fn structural_errors_in_several_entries_are_all_reported() {
    // An unknown key in one scenario, a wrong type in another, a missing key in an enterprise,
    // and a semantic mistake in a fourth entry: four errors, not just the first. SA-3 names the
    // broken enterprise: that is not reported again as an unknown enterprise.
    let extra = r#"
[[scenario]]
id = "SA-2"
enterprise = "acme"
basis = "standard_contract"
filing_ref = "F-2"
recipient = { name = "Other", country = "FR" }
activity = "x"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.21.0.0/16"]
destinations = ["other.example"]
persons_per_year = "many"

[[enterprise]]
id = "beta"
uscc = "91350100M000100Y43"

[[scenario]]
id = "SA-3"
enterprise = "beta"
basis = "standard_contract"
filing_ref = "F-3"
recipient = { name = "Other", country = "FR" }
activity = "x"
data = ["personal"]
valid_from = 2026-01-01
valid_until = 2028-12-31
sources = ["10.22.0.0/16"]
destinations = ["Other.example"]
"#;
    let text = edit(21, "colour = \"red\"") + extra;
    let errors = registry_errors(&text);
    let got: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        got,
        vec![(21, 1), (35, 20), (37, 1), (52, 17)],
        "{errors:#?}"
    );
    assert!(errors[0].message.contains("unknown field `colour`"));
    assert!(errors[1].message.contains("invalid type: string \"many\""));
    assert!(errors[2].message.contains("missing field `name`"));
    assert!(errors[3].message.contains("upper-case"));
}

#[test]
fn check_summary_lists_what_an_operator_needs() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/agent.toml"
    ));
    let (cfg, warnings) = load_agent_config(path, today()).expect("valid");
    let text = crossline_config::check::summary(&cfg, &warnings, today());
    for needle in [
        "gateway:      gw-bj-01",
        "domestic:     2 prefixes (10.0.0.0/8, fd00::/8)",
        "enterprises:  8 (3 green channel, 3 FTZ, 1 CIIO)",
        "green channel: yanjing-pharma, union-west-hospital, capital-air",
        "FTZ:           yanjing-pharma, shunyi-motors, zhiyuan-ai",
        "scenarios:    16",
        "circuits:     none (every scenario on any circuit)",
        "security_assessment      2",
        "exemption                9  (art3 2, art4 1, art5_contract 3, art5_hr 1, art5_emergency 1, art5_small 1)",
        "ftz_negative_list        2",
        // Working days since expiry warnings count them; 2027 has no built-in schedule, so this
        // filing's figure is in calendar days and says so.
        "expiring within 60 working days of 2026-11-27: 1",
        "CERT-2024-0009 (xuanwu-shop, FICTIONAL-CERT-2024-0009) valid until 2027-01-15 (49 calendar days left: no holiday schedule for 2027)",
        "working days: holiday schedules for 2024, 2025, 2026",
        "no schedule for 2027",
        "exclude:      1 entry (public-resolvers)",
        "warnings:     2",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn agent_sections_report_their_mistakes_together() {
    // An unknown key in [capture], a wrong type in [uplink], an unknown signature key, and a
    // semantic mistake at the top: four errors in one pass, registry still checked.
    let text = AGENT_BASE
        .replace("gateway = \"gw-bj-01\"", "gateway = \"GW\"")
        .replace("udp_timeout = \"60s\"", "udp_timout = \"60s\"")
        .replace("fsync = \"1s\"", "fsync = 1")
        .replace(
            "category = \"auto/vin\"",
            "category = \"auto/vin\"\nseverity = \"high\"",
        );
    let errors =
        agent_result(&text, &edit(4, r#"uscc = "91350100M000100Y44""#)).expect_err("mistakes");
    let got: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        got,
        vec![(1, 11), (6, 1), (14, 9), (27, 1), (4, 8)],
        "{errors:#?}"
    );
    assert!(errors[1].message.contains("unknown field `udp_timout`"));
    assert!(errors[2].message.contains("invalid type: integer `1`"));
    assert!(errors[3].message.contains("unknown field `severity`"));
    assert!(errors[4].file.ends_with("registry.toml"));
}

#[test]
fn agent_missing_required_key() {
    let text = AGENT_BASE.replace("registry = \"registry.toml\"\n", "");
    let errors = agent_result(&text, BASE).expect_err("missing");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].message.contains("missing field `registry`"),
        "{errors:#?}"
    );
}

#[test]
fn byte_sizes_in_the_registry() {
    for (text, bytes) in [
        ("caps = { bytes_per_day = 1000 }", 1000),
        ("caps = { bytes_per_day = \"500 MB\" }", 500_000_000),
        ("caps = { bytes_per_day = \"500 MiB\" }", 500 << 20),
        ("caps = { bytes_per_day = \"1.5 KB\" }", 1500),
    ] {
        let (reg, _) = registry_result(&edit(20, text)).expect("valid cap");
        assert_eq!(reg.scenarios[0].bytes_per_day, Some(bytes), "{text}");
    }
    let errors = registry_errors(&edit(20, "caps = { bytes_per_day = -5 }"));
    assert_eq!((errors[0].line, errors[0].column), (20, 26));
    assert!(errors[0].message.contains("-5 is negative"));
}

#[test]
fn domestic_destination_warning() {
    let (_, warnings) = registry_result(&edit(
        17,
        r#"destinations = ["*.cro.example.de", "10.9.0.0/16"]"#,
    ))
    .expect("a warning, not an error");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!((warnings[0].line, warnings[0].column), (17, 37));
    assert!(warnings[0]
        .message
        .contains("10.9.0.0/16 lies inside the domestic prefix 10.0.0.0/8"));
}

#[test]
fn a_broken_scenario_is_not_reported_again_by_a_signature() {
    // SA-1 has an unknown key; the signature that approves SA-1 must not add a second error.
    let errors = agent_result(AGENT_BASE, &edit(21, "colour = \"red\"")).expect_err("one error");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].file.ends_with("registry.toml"));
    assert!(errors[0].message.contains("unknown field `colour`"));
}

#[test]
fn bad_example_agent_lists_every_mistake_of_both_files() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/bad/agent.toml"
    ));
    let errors = load_agent_config(path, today())
        .expect_err("mistakes")
        .errors;
    let got: Vec<(String, usize, usize)> = errors
        .iter()
        .map(|e| {
            let name = e.file.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), e.line, e.column)
        })
        .collect();
    let reg = "five-mistakes.registry.toml".to_string();
    let agent = "agent.toml".to_string();
    assert_eq!(
        got,
        vec![
            (agent.clone(), 3, 11),
            (agent.clone(), 8, 15),
            (agent, 15, 9),
            (reg.clone(), 4, 8),
            (reg.clone(), 9, 9),
            (reg.clone(), 13, 12),
            (reg.clone(), 15, 17),
            (reg, 16, 13),
        ],
        "{errors:#?}"
    );
    assert_eq!(crossline_config::check_command(path, today()), 78);
}

#[test]
fn check_summary_lists_filings_not_yet_valid() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/agent.toml"
    ));
    let early = Date::new(2025, 6, 1).expect("valid");
    let (cfg, warnings) = load_agent_config(path, early).expect("valid");
    let later = cfg
        .registry
        .scenarios
        .iter()
        .filter(|s| s.valid_from > early)
        .count();
    assert!(later > 0);
    let text = crossline_config::check::summary(&cfg, &warnings, early);
    assert!(
        text.contains(&format!(
            "not yet valid on 2025-06-01: {later} (traffic before valid_from is flagged filing_not_yet_valid)"
        )),
        "{text}"
    );
}
