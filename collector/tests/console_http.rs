//! The API and the console over plain HTTP against the real binary: query decoding and the
//! OpenAPI findings of the API fuzzing (`%+1`, 64-bit `offset`, empty `since`, `comment: null`),
//! and the console's security: sign-in, cookie flags, CSRF, role scopes by URL, escaping.

mod common;

use common::*;
use serde_json::Value;

const REG: &str = "tok-regulator";
const OPS: &str = "tok-operator-gw-a";
const YANJING: &str = "tok-yanjing";

fn tokens() -> String {
    let t = |name: &str, role: &str, tok: &str, extra: &str| {
        format!(
            "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n{extra}",
            crossline_collector::util::sha256_hex(tok.as_bytes())
        )
    };
    [
        t("cac", "regulator", REG, ""),
        t("noc", "operator", OPS, "gateways = [\"gw-a\"]\n"),
        t(
            "yanjing",
            "enterprise",
            YANJING,
            "enterprise = \"yanjing-pharma\"\n",
        ),
    ]
    .concat()
}

fn alert(gateway: &str, flow_id: u64, kind: &str, enterprise: &str) -> String {
    let mut v: Value = serde_json::from_str(&alert_line(
        gateway,
        flow_id,
        kind,
        "high",
        Some(enterprise),
        "203.0.113.50",
    ))
    .expect("json");
    v["alert"]["scenario"] = serde_json::json!(format!("SC-{enterprise}"));
    v.to_string()
}

struct Setup {
    _dir: TempDir,
    c: Collector,
}

/// A collector with two gateways and three enterprises' incidents; `extra` is appended to the
/// gw-a batch (hostile data).
fn setup(extra: &[String]) -> Setup {
    let dir = TempDir::new("console-http");
    let pki = make_pki(dir.path(), &["gw-a", "gw-b"]);
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!("{}{}", base_config(&["gw-a", "gw-b"]), tokens()),
    )
    .expect("config");
    let c = Collector::start(&cfg);
    let mut a = vec![
        alert("gw-a", 1, "unfiled_export", "yanjing-pharma"),
        alert("gw-a", 2, "recipient_not_filed", "shunyi-motors"),
    ];
    a.extend_from_slice(extra);
    let r = post_batch(
        c.ingest,
        &gateway_client(&pki, "gw-a"),
        1,
        1,
        a.join("\n").as_bytes(),
        false,
    )
    .expect("post a");
    assert_eq!(r.json()["status"], "stored", "{}", r.text());
    let b = [alert("gw-b", 3, "persons_threshold", "jinrong-bank")].join("\n");
    let r = post_batch(
        c.ingest,
        &gateway_client(&pki, "gw-b"),
        1,
        1,
        b.as_bytes(),
        false,
    )
    .expect("post b");
    assert_eq!(r.json()["status"], "stored", "{}", r.text());
    Setup { _dir: dir, c }
}

fn incident_of(api: std::net::SocketAddr, enterprise: &str) -> i64 {
    let r = api_get(
        api,
        &format!("/api/v1/incidents?enterprise={enterprise}"),
        Some(REG),
    );
    r.json()["items"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no incident of {enterprise}: {}", r.text()))
}

/// The findings of the API fuzzing against the OpenAPI document, each fixed.
#[test]
fn query_decoding_and_documented_parameters() {
    let s = setup(&[]);
    let api = s.c.api;
    // `%+1` is not an escape: it stays literal (`+` is a space); it never becomes byte 0x01.
    let r = api_get(api, "/api/v1/alerts?severity=%+1", Some(REG));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("% 1"), "{}", r.text());
    assert!(!r.text().contains("\\u{1}"), "{}", r.text());
    // A proper escape still decodes.
    let r = api_get(
        api,
        "/api/v1/incidents?enterprise=yanjing%2Dpharma",
        Some(REG),
    );
    assert_eq!(
        r.json()["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text()
    );
    // `offset` is a 64-bit integer.
    for path in [
        "/api/v1/alerts?offset=4294967296",
        "/api/v1/incidents?offset=4294967296",
        "/api/v1/audit?offset=4294967296",
    ] {
        let r = api_get(api, path, Some(REG));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json()["offset"], 4_294_967_296_u64, "{path}");
        assert_eq!(
            r.json()["items"].as_array().map(Vec::len),
            Some(0),
            "{path}"
        );
    }
    // An empty `since`/`until` is "not given", as documented.
    let r = api_get(api, "/api/v1/alerts?since=&until=", Some(REG));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(3));
    // An unknown parameter: a documented 400 naming it.
    let r = api_get(api, "/api/v1/audit?colour=red", Some(REG));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("colour"), "{}", r.text());
    let doc = api_get(api, "/openapi.json", None).json();
    assert!(doc["paths"]["/api/v1/audit"]["get"]["responses"]["400"].is_object());
    assert_eq!(
        doc["paths"]["/api/v1/alerts"]["get"]["parameters"]
            .as_array()
            .and_then(|p| p.iter().find(|x| x["name"] == "offset"))
            .map(|x| x["schema"]["format"].clone()),
        Some(serde_json::json!("int64"))
    );
    // `comment` must be a string: null is refused, nothing changes.
    let id = incident_of(api, "yanjing-pharma");
    let auth = [("Authorization", format!("Bearer {REG}"))];
    for body in [&br#"{"comment": null}"#[..], br#"{"comment": 5}"#, b"[1]"] {
        let r = http(
            api,
            "POST",
            &format!("/api/v1/incidents/{id}/acknowledge"),
            &auth,
            body,
        );
        assert_eq!(
            r.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
    }
    let r = api_get(api, &format!("/api/v1/incidents/{id}"), Some(REG));
    assert_eq!(r.json()["status"], "open", "{}", r.text());
    // Over 64 KiB: refused.
    let big = format!("{{\"comment\": \"{}\"}}", "x".repeat(70 << 10));
    let r = http(
        api,
        "POST",
        &format!("/api/v1/incidents/{id}/acknowledge"),
        &auth,
        big.as_bytes(),
    );
    assert_eq!(r.status, 413);
}
