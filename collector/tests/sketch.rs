//! Enterprise-wide persons and caps from two gateways' sketches, through a real collector
//! (mTLS ingest, SQLite store, API): each gateway alone stays under 80% of 100,000 persons and
//! under a scenario's cap; merged, the enterprise passes both and the collector raises each
//! alert once, with `scope: "enterprise"` and both gateways. Sketches resent (also after the
//! collector was killed and restarted) do not double-count; a sketch hashed under another PI key
//! is refused and counted while its batch is stored.

mod common;

use common::*;
use crossline_config::sketch::HyperLogLog;
use serde_json::{json, Value};

const REG: &str = "regulator-token-sketch";
const ACME: &str = "acme-token-sketch";
const OTHER: &str = "other-token-sketch";
const KEY: &str = "00c0ffee00c0ffee";

fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn persons(range: std::ops::Range<u64>) -> String {
    let mut h = HyperLogLog::new();
    for i in range {
        h.insert(splitmix(i));
    }
    h.encode()
}

fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        + 8 * 3600;
    crossline_config::time::Date::from_days(secs.div_euclid(86_400)).to_string()
}

fn year() -> i32 {
    today()[..4].parse().expect("year")
}

fn sketch_line(gateway: &str, key: &str, registers: &str, bytes: u64) -> String {
    // The layout agents write: EVE's names, crossline's sketch under `crossline`.
    json!({
        "timestamp": "2026-03-02T09:14:07.118042+0000",
        "event_type": "sketch",
        "host": gateway,
        "crossline": {
            "gateway": gateway,
            "sketch": {
                "enterprise": "acme",
                "uscc": "91110108MA01PH7K91",
                "key_fingerprint": key,
                "persons": [{"year": year(), "category": "personal", "registers": registers,
                             "estimate": 60000, "limit": 100000}],
                "volumes": [{"scenario": "S-CAP", "day": today(), "bytes": bytes, "cap": 1000000}]
            }
        }
    })
    .to_string()
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("collector.toml");
    let t = |name: &str, role: &str, tok: &str, extra: &str| {
        format!(
            "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n{extra}",
            crossline_collector::util::sha256_hex(tok.as_bytes())
        )
    };
    let text = format!(
        "{}[retention]\nflows = \"100000d\"\n{}{}{}",
        base_config(&["gw-a", "gw-b", "gw-c"]),
        t("cac", "regulator", REG, ""),
        t("acme", "enterprise", ACME, "enterprise = \"acme\"\n"),
        t("other", "enterprise", OTHER, "enterprise = \"other\"\n"),
    );
    std::fs::write(&cfg, text).expect("config");
    cfg
}

fn enterprise_alerts(c: &Collector, kind: &str) -> Vec<Value> {
    let r = api_get(
        c.api,
        &format!("/api/v1/alerts?kind={kind}&enterprise=acme"),
        Some(REG),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let items = v
        .get("items")
        .and_then(Value::as_array)
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default();
    items
        .into_iter()
        .filter(|a| {
            let a = a.get("alert").unwrap_or(a);
            a["scope"] == "enterprise"
        })
        .collect()
}

fn post(c: &Collector, pki: &std::path::Path, gw: &str, seq: u64, body: &str) {
    let client = gateway_client(pki, gw);
    let r = post_batch(c.ingest, &client, 7, seq, body.as_bytes(), false).expect("post");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn two_gateways_cross_enterprise_wide_once_and_resends_do_not_double_count() {
    let dir = TempDir::new("sketch");
    let pki = make_pki(dir.path(), &["gw-a", "gw-b", "gw-c"]);
    let cfg = config(dir.path());
    let mut c = Collector::start(&cfg);
    // 60,000 persons each, 35,000 in common: 85,000 together. 600 kB each of a 1 MB cap.
    let a = sketch_line("gw-a", KEY, &persons(0..60_000), 600_000);
    let b = sketch_line("gw-b", KEY, &persons(25_000..85_000), 600_000);
    post(&c, &pki, "gw-a", 1, &a);
    assert!(enterprise_alerts(&c, "persons_threshold").is_empty());
    assert!(enterprise_alerts(&c, "volume_cap_exceeded").is_empty());
    post(&c, &pki, "gw-b", 1, &b);
    let p = enterprise_alerts(&c, "persons_threshold");
    assert_eq!(
        p.len(),
        1,
        "{p:?} all: {} log: {:?}",
        api_get(c.api, "/api/v1/alerts", Some(REG)).text(),
        c.log.lock().map(|l| l.clone()).unwrap_or_default()
    );
    let pa = p[0].get("alert").unwrap_or(&p[0]).clone();
    assert_eq!(pa["gateways"], json!(["gw-a", "gw-b"]), "{pa}");
    let est = pa["persons"].as_u64().expect("persons");
    assert!((83_000..=87_000).contains(&est), "{est}");
    assert!(pa["summary"].as_str().unwrap_or("").contains("80%"), "{pa}");
    let caps = enterprise_alerts(&c, "volume_cap_exceeded");
    assert_eq!(caps.len(), 1, "{caps:?}");

    // The same sketches again (new batches), and the collector killed and restarted.
    post(&c, &pki, "gw-a", 2, &a);
    post(&c, &pki, "gw-b", 2, &b);
    c.kill();
    let c = Collector::start(&cfg);
    post(&c, &pki, "gw-a", 3, &a);
    post(&c, &pki, "gw-b", 3, &b);
    assert_eq!(enterprise_alerts(&c, "persons_threshold").len(), 1);
    assert_eq!(enterprise_alerts(&c, "volume_cap_exceeded").len(), 1);

    // The summary: enterprise-wide persons and today's bytes, not double-counted.
    let r = api_get(c.api, "/api/v1/enterprises/acme/summary", Some(ACME));
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json();
    let wide = &s["enterprise_wide"];
    let p = &wide["persons"][0];
    assert_eq!(p["category"], "personal", "{s}");
    let est = p["estimate"].as_u64().expect("estimate");
    assert!((83_000..=87_000).contains(&est), "{est}");
    assert!(p["error_bound"].as_u64().expect("bound") > 0);
    assert_eq!(p["limit"], 100_000);
    let v = &wide["volumes_today"][0];
    assert_eq!(
        (v["scenario"].as_str(), v["bytes"].as_u64()),
        (Some("S-CAP"), Some(1_200_000)),
        "{s}"
    );
    // Another enterprise's token sees none of it.
    let r = api_get(c.api, "/api/v1/enterprises/acme/summary", Some(OTHER));
    assert!(r.status == 403 || r.status == 404, "{}", r.text());

    // A third gateway hashing with another key: refused and counted, its batch stored.
    let other = sketch_line(
        "gw-c",
        "ffffffffffffffff",
        &persons(100_000..200_000),
        5_000_000,
    );
    post(&c, &pki, "gw-c", 1, &other);
    let r = api_get(c.api, "/api/v1/enterprises/acme/summary", Some(ACME));
    let s = r.json();
    let est = s["enterprise_wide"]["persons"][0]["estimate"]
        .as_u64()
        .expect("estimate");
    assert!(est < 90_000, "refused persons merged: {est}");
    assert_eq!(
        s["enterprise_wide"]["volumes_today"][0]["bytes"].as_u64(),
        Some(1_200_000)
    );
    let m = api_get(c.api, "/metrics", Some(REG)).text();
    assert!(
        m.lines()
            .any(|l| l.starts_with("crossline_collector_sketches_total{result=\"refused_key\"} 1")),
        "{m}"
    );
    assert!(
        c.log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains("refused") && l.contains("ffffffffffffffff")),
        "no refusal logged"
    );
}
