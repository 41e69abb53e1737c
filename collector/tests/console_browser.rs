//! The console in a real headless Chromium (Debian `chromium`), driven over the DevTools
//! protocol by a small WebSocket client in this file, against the real collector binary with
//! alerts of three enterprises on two gateways ingested over mutual TLS.
//!
//! Per role (regulator, gw-a operator, one enterprise): sign in through the form, see exactly
//! the incidents the API gives that token, open every page; the operator acknowledges and the
//! regulator resolves one incident with a cause and measures, opens its report and prints it
//! to PDF; everyone signs out. No page may log a console error, an exception or a CSP
//! violation. Every page is screenshotted to `<target>/console-screenshots/` (listed in the
//! output). axe-core (npm, installed into `<target>/console-test-cache/` when missing) runs on
//! every page; A/AA violations fail the test.
//!
//! Chromium missing: the test panics under `CI=true` and prints SKIPPED otherwise. axe-core
//! not installable (no npm or registry): the same.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REG: &str = "tok-regulator";
const OPS: &str = "tok-operator-gw-a";
const YANJING: &str = "tok-yanjing";

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn skip(why: &str) {
    if ci() {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
}

fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map_or_else(|| tmp.to_path_buf(), Path::to_path_buf)
}

// ---------------------------------------------------------------- a minimal WebSocket client

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

struct Ws {
    s: TcpStream,
}

impl Ws {
    fn connect(url: &str) -> Ws {
        let rest = url.strip_prefix("ws://").expect("ws url");
        let (host, path) = rest.split_at(rest.find('/').expect("ws path"));
        let mut s = TcpStream::connect(host).expect("connect devtools");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("ws handshake");
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).expect("ws handshake reply");
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "devtools refused: {head}");
        Ws { s }
    }

    fn send(&mut self, text: &str) {
        let p = text.as_bytes();
        let mut f = vec![0x81u8];
        match p.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x5a, 0x17, 0xc3, 0x88];
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&f).expect("ws send");
    }

    /// The next text message (fragments joined), or None on timeout.
    fn recv(&mut self, deadline: Instant) -> Option<String> {
        let mut msg = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.s.set_read_timeout(Some(left)).expect("timeout");
            let mut h = [0u8; 2];
            match self.s.read_exact(&mut h) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None
                }
                Err(e) => panic!("devtools connection: {e}"),
            }
            // The rest of a frame is read without a deadline problem: it is already on its way.
            self.s
                .set_read_timeout(Some(Duration::from_secs(60)))
                .expect("timeout");
            let fin = h[0] & 0x80 != 0;
            let op = h[0] & 0x0f;
            let mut len = u64::from(h[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                self.s.read_exact(&mut b).expect("len16");
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.s.read_exact(&mut b).expect("len64");
                len = u64::from_be_bytes(b);
            }
            let mut p = vec![0u8; usize::try_from(len).expect("frame size")];
            self.s.read_exact(&mut p).expect("payload");
            match op {
                0x8 => panic!("devtools closed the connection"),
                0x9 | 0xa => continue,
                _ => msg.extend_from_slice(&p),
            }
            if fin {
                return Some(String::from_utf8(msg).expect("utf-8 message"));
            }
        }
    }
}

// ---------------------------------------------------------------- the DevTools session

struct Browser {
    child: Child,
    ws: Ws,
    next: u64,
    session: String,
    events: Vec<Value>,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

const WAIT: Duration = Duration::from_secs(60);

impl Browser {
    fn start(chromium: &Path) -> Browser {
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("console-chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile");
        let mut child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(u) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(u.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(WAIT)
            .expect("chromium did not print its DevTools address");
        let ws = Ws::connect(&url);
        let mut b = Browser {
            child,
            ws,
            next: 0,
            session: String::new(),
            events: Vec::new(),
            profile,
        };
        let t = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = t["targetId"].as_str().expect("target id").to_string();
        let s = b.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        b.session = s["sessionId"].as_str().expect("session id").to_string();
        for m in ["Page.enable", "Runtime.enable", "Log.enable"] {
            b.call(m, json!({}));
        }
        b
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() && !method.starts_with("Target.") {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(&msg.to_string());
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self
                .ws
                .recv(deadline)
                .unwrap_or_else(|| panic!("no answer to {method} within {WAIT:?}"));
            let v: Value = serde_json::from_str(&m).expect("devtools json");
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    fn wait_event(&mut self, name: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.events.iter().position(|e| e["method"] == name) {
                self.events.remove(i);
                return;
            }
            let m = self
                .ws
                .recv(deadline)
                .unwrap_or_else(|| panic!("no {name} within {WAIT:?}"));
            let v: Value = serde_json::from_str(&m).expect("devtools json");
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("script failed: {e}\n{js}");
        }
        r["result"]["value"].clone()
    }

    /// Run `js` that navigates (a link or a form submit) and wait for the new page's load.
    fn navigate_by(&mut self, js: &str) {
        self.events.retain(|e| e["method"] != "Page.loadEventFired");
        self.eval(js);
        self.wait_event("Page.loadEventFired");
    }

    fn goto(&mut self, url: &str) {
        self.events.retain(|e| e["method"] != "Page.loadEventFired");
        self.call("Page.navigate", json!({"url": url}));
        self.wait_event("Page.loadEventFired");
    }

    /// Console errors, exceptions and CSP violations logged so far (and forget them).
    fn errors(&mut self) -> Vec<String> {
        // Give late log entries a moment.
        let deadline = Instant::now() + Duration::from_millis(200);
        while let Some(m) = self.ws.recv(deadline) {
            if let Ok(v) = serde_json::from_str::<Value>(&m) {
                if v.get("method").is_some() {
                    self.events.push(v);
                }
            }
        }
        let mut out = Vec::new();
        for e in self.events.drain(..) {
            match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => out.push(e["params"].to_string()),
                Some("Runtime.consoleAPICalled")
                    if matches!(e["params"]["type"].as_str(), Some("error" | "assert")) =>
                {
                    out.push(e["params"].to_string());
                }
                Some("Log.entryAdded") if e["params"]["entry"]["level"] == "error" => {
                    out.push(e["params"]["entry"].to_string());
                }
                _ => {}
            }
        }
        out
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = b64_decode(r["data"].as_str().expect("png data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("write screenshot");
    }
}

// ---------------------------------------------------------------- axe-core

fn axe_source() -> Option<String> {
    let cache = target_dir().join("console-test-cache");
    let file = cache.join("node_modules/axe-core/axe.min.js");
    if !file.is_file() {
        std::fs::create_dir_all(&cache).ok()?;
        let st = Command::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "axe-core@4",
            ])
            .current_dir(&cache)
            .stdout(Stdio::null())
            .status()
            .ok()?;
        if !st.success() {
            return None;
        }
    }
    std::fs::read_to_string(file).ok()
}

/// A/AA violations of the current page (axe must have run its rules: some pass).
fn axe(b: &mut Browser, source: &str) -> Vec<String> {
    b.eval(source);
    let v = b.eval(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a','wcag2aa','wcag21a','wcag21aa','wcag22aa']}})\
         .then(r => ({passes: r.passes.length, violations: r.violations.map(v => v.id + ' (' + v.impact + '): ' + \
         v.help + ' — ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))}))",
    );
    assert!(
        v["passes"].as_u64().is_some_and(|n| n > 0),
        "axe-core ran no rule: {v}"
    );
    v["violations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- data

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

fn alert(gateway: &str, flow_id: u64, kind: &str, enterprise: &str, ts: &str) -> String {
    let mut v: Value = serde_json::from_str(&alert_line(
        gateway,
        flow_id,
        kind,
        "high",
        Some(enterprise),
        "203.0.113.50",
    ))
    .expect("json");
    v["crossline"]["alert"]["scenario"] = json!(format!("SC-{enterprise}"));
    v["timestamp"] = json!(ts);
    v["tls"] = json!({"sni": "eu.cro.example.de"});
    v.to_string()
}

fn start_collector(dir: &Path) -> Collector {
    let pki = make_pki(dir, &["gw-a", "gw-b"]);
    let cfg = dir.join("collector.toml");
    let registry = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/registry.toml"
    ));
    std::fs::write(
        &cfg,
        format!(
            "{}registry = {:?}\n{}[gateway.gw-a]\nline = \"CN2 Shanghai-Frankfurt 1G\"\nlocation = \"Shanghai Waigaoqiao IDC\"\n",
            base_config(&["gw-a", "gw-b"]),
            registry.display().to_string(),
            tokens()
        ),
    )
    .expect("config");
    let c = Collector::start(&cfg);
    let now = crossline_collector::util::now_ms();
    let ts = |ago_min: i64| crossline_collector::util::format_ms(now - ago_min * 60_000);
    let a = [
        alert("gw-a", 1, "unfiled_export", "yanjing-pharma", &ts(30)),
        alert("gw-a", 2, "unfiled_export", "yanjing-pharma", &ts(20)),
        alert("gw-a", 3, "recipient_not_filed", "shunyi-motors", &ts(10)),
        alert(
            "gw-a",
            4,
            "important_data_marker",
            "yanjing-pharma",
            &ts(200),
        ),
        alert(
            "gw-a",
            6,
            "important_data_marker",
            "shunyi-motors",
            &ts(300),
        ),
        json!({
            "timestamp": ts(1), "event_type": "stats", "gateway": "gw-a",
            "stats": {"packets": 150, "bytes": 1, "flows": 1, "evictions": 0,
                      "drops": {"kernel": 9}}
        })
        .to_string(),
    ]
    .join("\n");
    let r = post_batch(
        c.ingest,
        &gateway_client(&pki, "gw-a"),
        1,
        1,
        a.as_bytes(),
        false,
    )
    .expect("post gw-a");
    assert_eq!(r.json()["status"], "stored", "{}", r.text());
    let b = [alert(
        "gw-b",
        5,
        "persons_threshold",
        "jinrong-bank",
        &ts(5),
    )]
    .join("\n");
    let r = post_batch(
        c.ingest,
        &gateway_client(&pki, "gw-b"),
        1,
        1,
        b.as_bytes(),
        false,
    )
    .expect("post gw-b");
    assert_eq!(r.json()["status"], "stored", "{}", r.text());
    c
}

fn now_ts() -> String {
    crossline_collector::util::format_ms(crossline_collector::util::now_ms())
}

fn api_ids(api: SocketAddr, token: &str) -> BTreeSet<i64> {
    api_get(api, "/api/v1/incidents", Some(token)).json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect()
}

// ---------------------------------------------------------------- the test

struct Run {
    b: Browser,
    axe: Option<String>,
    shots: PathBuf,
    listed: Vec<String>,
    problems: Vec<String>,
}

impl Run {
    /// Check the page now shown: no errors, axe, screenshot.
    fn check(&mut self, name: &str) {
        let errors = self.b.errors();
        if !errors.is_empty() {
            self.problems
                .push(format!("{name}: console errors: {errors:#?}"));
        }
        if let Some(src) = self.axe.clone() {
            let v = axe(&mut self.b, &src);
            if !v.is_empty() {
                self.problems.push(format!("{name}: axe A/AA: {v:#?}"));
            }
        }
        let file = self.shots.join(format!("{name}.png"));
        self.b.screenshot(&file);
        self.listed.push(file.display().to_string());
    }

    fn sign_in(&mut self, base: &str, token: &str, name: &str) {
        self.b.goto(&format!("{base}/console/login"));
        self.check(&format!("{name}-login"));
        self.b.navigate_by(&format!(
            "document.getElementById('token').value = {}; document.querySelector('form.act').submit()",
            json!(token)
        ));
    }

    fn sign_out(&mut self) {
        self.b
            .navigate_by("document.querySelector('form[action=\"/console/logout\"]').submit()");
        let path = self.b.eval("location.pathname");
        assert_eq!(path, "/console/login", "after sign-out");
    }

    fn listed_ids(&mut self) -> BTreeSet<i64> {
        let v = self.b.eval(
            "Array.from(document.querySelectorAll('tbody a[href^=\"/console/incidents/\"]')).map(a => a.textContent)",
        );
        v.as_array()
            .expect("ids")
            .iter()
            .filter_map(|x| x.as_str()?.parse().ok())
            .collect()
    }
}

#[test]
fn console_in_headless_chromium_per_role() {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    else {
        return skip("chromium not found (apt-get install -y chromium)");
    };
    let axe_src = axe_source();
    if axe_src.is_none() {
        skip("axe-core could not be installed with npm; accessibility not checked");
        if ci() {
            return;
        }
    }
    let dir = TempDir::new("console-browser");
    let c = start_collector(dir.path());
    let base = format!("http://{}", c.api);
    let shots = target_dir().join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let mut run = Run {
        b: Browser::start(&chromium),
        axe: axe_src,
        shots,
        listed: Vec::new(),
        problems: Vec::new(),
    };

    // Each role sees exactly the incidents the API gives its token, and only its pages.
    for (token, name) in [
        (REG, "regulator"),
        (OPS, "operator"),
        (YANJING, "enterprise"),
    ] {
        run.sign_in(&base, token, name);
        assert_eq!(
            run.b.eval("location.pathname"),
            "/console/incidents",
            "{name} signed in"
        );
        run.check(&format!("{name}-incidents"));
        let want = api_ids(c.api, token);
        assert!(!want.is_empty(), "{name} has incidents");
        assert_eq!(run.listed_ids(), want, "{name} sees exactly its incidents");
        if name == "regulator" {
            // Sorted by deadline: the overdue one (5 h old, 4 h deadline) first, then the one
            // due within the hour, each marked.
            let rows = run
                .b
                .eval("Array.from(document.querySelectorAll('tbody tr')).map(r => r.className)");
            assert_eq!(rows[0], "overdue", "{rows}");
            assert_eq!(rows[1], "soon", "{rows}");
        }
        let first = *want.iter().next().expect("one");
        run.b.goto(&format!("{base}/console/incidents/{first}"));
        run.check(&format!("{name}-incident"));
        let pages: &[&str] = match name {
            "regulator" => &["gateways", "enterprises"],
            "operator" => &["gateways"],
            _ => &["enterprises"],
        };
        for p in pages {
            run.b.goto(&format!("{base}/console/{p}"));
            assert_eq!(run.b.eval("document.querySelector('h1') !== null"), true);
            if *p == "gateways" {
                // gw-a: packets and capture drops from its stats; the operator sees gw-a only.
                let rows = run.b.eval(
                    "Array.from(document.querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))",
                );
                assert_eq!(rows[0][0], "gw-a", "{rows}");
                assert_eq!(rows[0][3], "150", "{rows}");
                assert_eq!(rows[0][4], "9", "{rows}");
                assert_eq!(
                    rows.as_array().map(Vec::len),
                    Some(if name == "regulator" { 2 } else { 1 }),
                    "{rows}"
                );
            }
            if *p == "enterprises" {
                // Filings from the registry: the enterprise sees its own only.
                let text = run.b.eval("document.body.innerText");
                let text = text.as_str().unwrap_or("");
                assert!(text.contains("FICTIONAL-BJFTZ-PHARMA-07"), "{name}: {text}");
                assert_eq!(
                    text.contains("FICTIONAL-BJFTZ-AUTO-12"),
                    name == "regulator",
                    "{name}: {text}"
                );
            }
            run.check(&format!("{name}-{p}"));
        }
        // English by the switch.
        run.b.goto(&format!("{base}/console/incidents?lang=en"));
        assert_eq!(run.b.eval("document.documentElement.lang"), "en");
        run.check(&format!("{name}-incidents-en"));
        run.b.goto(&format!("{base}/console/incidents?lang=zh"));
        run.b.errors();
        run.sign_out();
        run.check(&format!("{name}-signed-out"));
    }

    // The operator acknowledges a gw-a incident, the regulator resolves it; the report prints.
    let id = api_get(
        c.api,
        "/api/v1/incidents?enterprise=yanjing-pharma&status=open",
        Some(REG),
    )
    .json()["items"][0]["id"]
        .as_i64()
        .expect("open yanjing incident");
    run.sign_in(&base, OPS, "operator-act");
    run.b.goto(&format!("{base}/console/incidents/{id}"));
    run.b.navigate_by(
        "document.getElementById('acknowledge-cause').value = '测试数据上传 test upload';\
         document.getElementById('acknowledge-measures').value = '已在代理处阻断';\
         document.querySelector('form[action$=\"/acknowledge\"]').submit()",
    );
    run.check("operator-acknowledged");
    run.sign_out();
    run.sign_in(&base, REG, "regulator-act");
    run.b.goto(&format!("{base}/console/incidents/{id}"));
    run.b.navigate_by(
        "document.getElementById('resolve-cause').value = 'Unfiled CRO upload of trial data';\
         document.getElementById('resolve-measures').value = 'Transfer stopped; contract filing submitted';\
         document.querySelector('form[action$=\"/resolve\"]').submit()",
    );
    run.check("regulator-resolved");
    let v = api_get(c.api, &format!("/api/v1/incidents/{id}"), Some(REG)).json();
    assert_eq!(v["status"], "resolved", "{v}");
    assert_eq!(v["history"][0]["by"], "noc");
    assert_eq!(v["history"][1]["by"], "cac");
    assert!(
        v["history"][1]["comment"]
            .as_str()
            .is_some_and(|c| c.contains("Transfer stopped")),
        "{v}"
    );
    for (lang, name) in [("zh", "report"), ("en", "report-en")] {
        run.b
            .goto(&format!("{base}/console/incidents/{id}/report?lang={lang}"));
        let text = run.b.eval("document.body.innerText");
        let text = text.as_str().unwrap_or("");
        assert!(
            text.contains("Transfer stopped; contract filing submitted"),
            "{text}"
        );
        assert!(text.contains("Unfiled CRO upload of trial data"), "{text}");
        if lang == "zh" {
            assert!(text.contains("数据出境安全事件报告"), "{text}");
        }
        run.check(name);
        let pdf = run
            .b
            .call("Page.printToPDF", json!({"printBackground": false}));
        let pdf = b64_decode(pdf["data"].as_str().expect("pdf"));
        assert!(pdf.starts_with(b"%PDF"), "not a PDF");
        let file = run.shots.join(format!("{name}.pdf"));
        std::fs::write(&file, &pdf).expect("write pdf");
        run.listed.push(file.display().to_string());
    }
    // A new incident while the list is open: console.js announces it without a reload.
    run.b.goto(&format!("{base}/console/incidents"));
    assert_eq!(
        run.b
            .eval("document.getElementById('new-incidents').hidden"),
        true
    );
    let before = api_ids(c.api, REG);
    let line = alert("gw-b", 7, "opaque_tunnel", "jinrong-bank", &now_ts());
    let r = post_batch(
        c.ingest,
        &gateway_client(&dir.path().join("pki"), "gw-b"),
        1,
        2,
        line.as_bytes(),
        false,
    )
    .expect("post new alert");
    assert_eq!(r.json()["status"], "stored", "{}", r.text());
    let fresh: Vec<i64> = api_ids(c.api, REG).difference(&before).copied().collect();
    assert_eq!(fresh.len(), 1, "one new incident");
    let deadline = Instant::now() + Duration::from_secs(40);
    while run
        .b
        .eval("document.getElementById('new-incidents').hidden")
        != false
    {
        assert!(
            Instant::now() < deadline,
            "the new incident was not announced"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    run.check("regulator-new-incident-announced");
    run.b
        .navigate_by("document.querySelector('#new-incidents a').click()");
    assert!(run.listed_ids().contains(&fresh[0]), "new incident listed");
    run.sign_out();

    println!("console screenshots and PDFs:");
    for f in &run.listed {
        println!("  {f}");
    }
    assert!(run.problems.is_empty(), "{:#?}", run.problems);
}
