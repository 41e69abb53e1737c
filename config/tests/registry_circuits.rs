//! `vlans` in the registry: enterprises and scenarios name the VLAN ids of their circuits.
//! Loaded through the public loader from files on disk; every mistake is located at its line
//! and column, and overlaps that no circuit separates are warned about.

use crossline_config::registry::{on_circuit, IpNet};
use crossline_config::time::Date;
use crossline_config::{load_registry, Diagnostic, Registry};

fn domestic() -> Vec<IpNet> {
    vec![crossline_config::parse::parse_ip_net("10.0.0.0/8").expect("valid")]
}

fn load(text: &str) -> Result<(Registry, Vec<Diagnostic>), Vec<Diagnostic>> {
    let dir = tempfile::Builder::new()
        .prefix("crossline-circuits-")
        .tempdir()
        .expect("temp dir");
    let path = dir.path().join("registry.toml");
    std::fs::write(&path, text).expect("write registry");
    let today = Date::new(2026, 6, 1).expect("date");
    load_registry(&path, &domestic(), today).map_err(|e| e.errors)
}

fn enterprise(id: &str, extra: &str) -> String {
    format!(
        "[[enterprise]]\nid = \"{id}\"\nname = \"{id}\"\nuscc = \"91350100M000100Y43\"\n{extra}\n"
    )
}

fn scenario(id: &str, ent: &str, sources: &str, dest: &str, extra: &str) -> String {
    format!(
        "[[scenario]]\nid = \"{id}\"\nenterprise = \"{ent}\"\nbasis = \"standard_contract\"\nfiling_ref = \"F\"\nrecipient = {{ name = \"R\", country = \"DE\" }}\nactivity = \"a\"\ndata = [\"personal\"]\nvalid_from = 2026-01-01\nvalid_until = 2028-12-31\nsources = [\"{sources}\"]\ndestinations = [\"{dest}\"]\n{extra}\n"
    )
}

#[test]
fn scenarios_inherit_their_enterprises_circuits_unless_they_name_their_own() {
    let text = [
        enterprise("acme", "vlans = [200, 100, 4094]"),
        enterprise("beta", ""),
        scenario("S-1", "acme", "10.1.0.0/16", "198.51.100.0/24", ""),
        scenario(
            "S-2",
            "acme",
            "10.1.0.0/16",
            "203.0.113.0/24",
            "vlans = [7]",
        ),
        scenario("S-3", "beta", "10.2.0.0/16", "198.51.100.0/24", ""),
    ]
    .concat();
    let (reg, warnings) = load(&text).expect("valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(reg.enterprises[0].vlans, vec![100, 200, 4094], "sorted");
    assert!(reg.enterprises[1].vlans.is_empty(), "no key = any circuit");
    assert_eq!(reg.scenarios[0].vlans, vec![100, 200, 4094], "inherited");
    assert_eq!(reg.scenarios[1].vlans, vec![7], "own");
    assert!(reg.scenarios[2].vlans.is_empty());
}

#[test]
fn bad_vlans_are_located_and_say_what_was_expected() {
    // (the `vlans` line of the enterprise or scenario, column, words)
    let cases: [(&str, bool, usize, &[&str]); 6] = [
        (
            "vlans = [0]",
            true,
            10,
            &["enterprise.vlans", "0", "1..=4094"],
        ),
        (
            "vlans = [100, 4095]",
            true,
            15,
            &["enterprise.vlans", "4095", "reserved"],
        ),
        (
            "vlans = [-3]",
            false,
            10,
            &["scenario.vlans", "-3", "1..=4094"],
        ),
        (
            "vlans = [70000]",
            false,
            10,
            &["scenario.vlans", "70000", "1..=4094"],
        ),
        (
            "vlans = []",
            false,
            9,
            &["scenario.vlans", "empty list", "leave `vlans` out"],
        ),
        (
            "vlans = [5, 6, 5]",
            true,
            16,
            &["enterprise.vlans", "5", "listed twice"],
        ),
    ];
    for (line, on_enterprise, column, words) in cases {
        let (e, s) = if on_enterprise {
            (line, "")
        } else {
            ("", line)
        };
        let text = [
            enterprise("acme", e),
            scenario("S-1", "acme", "10.1.0.0/16", "198.51.100.0/24", s),
        ]
        .concat();
        let errors = load(&text).expect_err(line);
        assert_eq!(errors.len(), 1, "{line}: {errors:?}");
        let at = if on_enterprise { 5 } else { 18 };
        assert_eq!(
            (errors[0].line, errors[0].column),
            (at, column),
            "{line}: {}",
            errors[0]
        );
        for w in words {
            assert!(
                errors[0].message.contains(w),
                "{line}: {w:?} in {}",
                errors[0]
            );
        }
    }
    // A VLAN written as a string is a type error of the file, located too.
    let text = [
        enterprise("acme", "vlans = [\"100\"]"),
        scenario("S-1", "acme", "10.1.0.0/16", "198.51.100.0/24", ""),
    ]
    .concat();
    let errors = load(&text).expect_err("string vlan");
    assert!(errors.iter().any(|e| e.line == 5), "{errors:?}");
}

#[test]
fn same_coverage_on_different_circuits_is_no_duplicate() {
    let two = |a: &str, b: &str| {
        [
            enterprise("acme", ""),
            scenario("S-1", "acme", "10.1.0.0/16", "198.51.100.0/24", a),
            scenario("S-2", "acme", "10.1.0.0/16", "198.51.100.0/24", b),
        ]
        .concat()
    };
    let (_, warnings) = load(&two("vlans = [100]", "vlans = [200]")).expect("valid");
    assert!(warnings.is_empty(), "different circuits: {warnings:?}");
    let (_, warnings) = load(&two("vlans = [100]", "vlans = [100]")).expect("valid");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].message.contains("same sources"), "{warnings:?}");
}

#[test]
fn overlapping_enterprises_are_warned_once_per_pair_and_only_without_separating_circuits() {
    let text = |a: &str, b: &str, c: &str| {
        [
            enterprise("acme", a),
            enterprise("beta", b),
            enterprise("gamma", c),
            scenario("S-A", "acme", "10.1.0.0/16", "198.51.100.0/24", ""),
            scenario("S-A2", "acme", "10.1.2.0/24", "198.51.100.0/24", ""),
            scenario("S-B", "beta", "10.1.2.0/24", "203.0.113.0/24", ""),
            // gamma's prefix is disjoint from the others: never an overlap.
            scenario("S-C", "gamma", "10.9.0.0/16", "203.0.113.0/24", ""),
        ]
        .concat()
    };
    let overlaps = |w: &[Diagnostic]| {
        w.iter()
            .filter(|d| d.message.contains("overlapping sources"))
            .cloned()
            .collect::<Vec<_>>()
    };
    // Separate circuits: no warning.
    let (_, w) = load(&text("vlans = [100]", "vlans = [200]", "")).expect("valid");
    assert!(overlaps(&w).is_empty(), "{w:?}");
    // No circuits: one warning for the pair (acme has two overlapping scenarios).
    let (_, w) = load(&text("", "", "")).expect("valid");
    let o = overlaps(&w);
    assert_eq!(o.len(), 1, "{o:?}");
    assert!(o[0].message.contains("\"beta\" and \"acme\""), "{}", o[0]);
    assert!(o[0].message.contains("10.1.2.0/24"), "{}", o[0]);
    // Sharing VLAN 100.
    let (_, w) = load(&text("vlans = [100, 300]", "vlans = [100, 200]", "")).expect("valid");
    let o = overlaps(&w);
    assert_eq!(o.len(), 1, "{o:?}");
    assert!(o[0].message.contains("both are on VLAN 100"), "{}", o[0]);
}

#[test]
fn many_overlapping_enterprises_give_a_bounded_number_of_warnings() {
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&enterprise(&format!("e{i}"), ""));
    }
    for i in 0..30 {
        text.push_str(&scenario(
            &format!("S-{i}"),
            &format!("e{i}"),
            "10.1.0.0/16",
            "198.51.100.0/24",
            "",
        ));
    }
    let (_, w) = load(&text).expect("valid");
    let listed = w
        .iter()
        .filter(|d| d.message.contains("have overlapping sources: scenario"))
        .count();
    assert_eq!(listed, 20, "the first 20 pairs are listed");
    // 30 enterprises: 435 pairs, 415 counted in one more warning.
    assert!(
        w.iter().any(|d| d.message.contains("415 more pairs")),
        "{w:?}"
    );
}

#[test]
fn on_circuit_checks_every_tag_and_ignores_empty_slots() {
    assert!(on_circuit(&[], &[0, 0, 0]), "no circuits = any");
    assert!(on_circuit(&[], &[5, 0, 0]));
    assert!(!on_circuit(&[100], &[0, 0, 0]), "untagged is not VLAN 100");
    assert!(on_circuit(&[100, 200], &[300, 200, 0]), "inner tag");
    assert!(!on_circuit(&[100, 200], &[300, 400, 500]));
}
