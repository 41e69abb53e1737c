//! SIGHUP re-reads `collector.toml` in the running binary: a new token and a new gateway are
//! accepted without a restart; a setting that needs one is logged with its old and new values.

mod common;
use common::*;
use std::process::Command;

const OLD: &str = "regulator-token-before-reload";
const NEW: &str = "regulator-token-added-by-reload";

fn token(name: &str, tok: &str) -> String {
    format!(
        "[[token]]\nname = \"{name}\"\nrole = \"regulator\"\nsha256 = \"{}\"\n",
        crossline_collector::util::sha256_hex(tok.as_bytes())
    )
}

#[test]
fn sighup_accepts_a_new_token_and_gateway_without_restart() {
    let dir = TempDir::new("reload");
    let pki = make_pki(dir.path(), &["gw-a", "gw-b"]);
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}[retention]\nflows = \"30d\"\n\n{}",
            base_config(&["gw-a"]),
            token("before", OLD)
        ),
    )
    .expect("config");
    let mut c = Collector::start(&cfg);
    let pid = c.child.id();
    assert_eq!(api_get(c.api, "/api/v1/alerts", Some(OLD)).status, 200);
    assert_eq!(api_get(c.api, "/api/v1/alerts", Some(NEW)).status, 401);
    let gw_b = gateway_client(&pki, "gw-b");
    let line = alert_line("gw-b", 1, "unfiled_export", "high", None, "198.51.100.7");
    let before = post_batch(c.ingest, &gw_b, 7, 1, line.as_bytes(), false).expect("post");
    assert_eq!(before.status, 403, "{}", before.text());

    std::fs::write(
        &cfg,
        format!(
            "{}[retention]\nflows = \"60d\"\n\n{}{}",
            base_config(&["gw-a", "gw-b"]),
            token("before", OLD),
            token("after", NEW)
        ),
    )
    .expect("config");
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    wait_for(10, "the new token accepted", || {
        api_get(c.api, "/api/v1/alerts", Some(NEW)).status == 200
    });
    // Same process, old token still good, the new gateway's batch is stored.
    assert!(c.child.try_wait().expect("try_wait").is_none(), "exited");
    assert_eq!(c.child.id(), pid);
    assert_eq!(api_get(c.api, "/api/v1/alerts", Some(OLD)).status, 200);
    let after = post_batch(c.ingest, &gw_b, 7, 1, line.as_bytes(), false).expect("post");
    assert_eq!(after.status, 200, "{}", after.text());
    // The gateway added by the reload has its series, as one configured at start would.
    let m = api_get(c.api, "/metrics", Some(OLD)).text();
    for series in [
        "crossline_agent_last_seen_timestamp_seconds{gateway=\"gw-b\"}",
        "crossline_collector_ingest_legacy_events_total{gateway=\"gw-b\"} 0",
    ] {
        assert!(
            m.lines().any(|l| l.starts_with(series)),
            "no {series} after the reload:\n{m}"
        );
    }
    let log = c.log.lock().expect("log").join("\n");
    assert!(
        log.contains("reloaded: applied gateways (1 -> 2); tokens (1 -> 2)"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("[retention]")
            && l.contains("2592000s")
            && l.contains("5184000s")
            && l.contains("needs a restart")),
        "{log}"
    );
    // The refused batch before the reload was logged with the gateway and the reason.
    assert!(
        log.lines()
            .any(|l| l.contains("refused batch 1 from gateway gw-b") && l.contains("403")),
        "{log}"
    );
    // A config that does not validate is logged and changes nothing.
    std::fs::write(&cfg, "listen = 12\n").expect("config");
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    wait_for(10, "the rejected reload logged", || {
        c.log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains("rejected on SIGHUP, keeping the running configuration"))
    });
    assert_eq!(api_get(c.api, "/api/v1/alerts", Some(NEW)).status, 200);
    assert!(c.terminate().success());
}
