//! Test support for crossline end-to-end tests: finding binaries, starting real processes.
//!
//! Every process started here is killed when its [`Proc`] is dropped, so a failing assertion
//! leaves nothing running. Binaries are looked up next to the test executable
//! (`target/debug/crossline-agent`), the way ripgrep's tests find `rg`; when they are missing
//! the tests say "run `cargo build --workspace`". External tools (Prometheus, Alertmanager,
//! promtool) are optional outside CI: [`tool`] prints `SKIPPED` and the test returns.
#![forbid(unsafe_code)]

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Whether we run under CI (`CI=true`): missing prerequisites are failures there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skip (print and return `false`) or, under CI, panic.
pub fn skip(reason: &str) -> bool {
    if in_ci() {
        panic!("CI=true but {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// Path of a crossline binary built next to the test executable, or a clear error.
pub fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    // target/debug/deps/suite-HASH -> target/debug
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "{} not found: run `cargo build --workspace` first",
            path.display()
        )
    }
}

/// Both crossline binaries, or skip (panic under CI) with the build hint.
pub fn binaries() -> Option<(PathBuf, PathBuf)> {
    match (bin("crossline-agent"), bin("crossline-collector")) {
        (Ok(a), Ok(c)) => Some((a, c)),
        (Err(e), _) | (_, Err(e)) => {
            skip(&e.to_string());
            None
        }
    }
}

/// An external tool at `path`, or skip (panic under CI).
pub fn tool(path: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.is_file() {
        Some(p)
    } else {
        skip(&format!(
            "{path} not installed (scripts/ensure-deps.sh test installs it)"
        ));
        None
    }
}

/// Whether the tests run as root (`id -u` is 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests), below the
/// kernel's ephemeral range: a port from that range can be handed, between its release here
/// and the server's bind, to the local end of some other test's outgoing connection, and the
/// server then cannot listen on it. Ports are drawn from the range below it, starting at a
/// place that differs from process to process (tests run concurrently).
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    const FLOOR: u32 = 10_000;
    let span = low.saturating_sub(FLOOR).max(1);
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = FLOOR + start.wrapping_add(n.wrapping_mul(101)) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A fresh directory (`tempfile`), removed on drop unless `KEEP_E2E_DIRS=1`.
#[derive(Debug)]
pub struct TempDir {
    dir: tempfile::TempDir,
}

impl TempDir {
    /// Create `$TMPDIR/crossline-e2e-NAME-` with a random suffix.
    pub fn new(name: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("crossline-e2e-{name}-"))
            .tempdir()
            .expect("create temp dir");
        TempDir { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var("KEEP_E2E_DIRS").is_ok_and(|v| v == "1") {
            self.dir.disable_cleanup(true);
            eprintln!("kept {}", self.dir.path().display());
        }
    }
}

/// A child process with its output in `LOG`, killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Proc {
    /// Short name for messages.
    pub name: String,
    child: Option<Child>,
    /// File receiving stdout and stderr.
    pub log: PathBuf,
}

impl Proc {
    /// Start `cmd` with stdout+stderr to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc> {
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .with_context(|| format!("start {name}: {cmd:?}"))?;
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Exit status if it has exited.
    pub fn try_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait for exit, at most `timeout`; kill it and fail if it takes longer.
    pub fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                // Where it hangs, before it is killed: each thread's stack.
                let threads = self.child.as_ref().map(|c| thread_dump(c.id()));
                self.kill();
                bail!(
                    "{} did not exit within {timeout:?}; log:\n{}\nits threads:\n{}",
                    self.name,
                    tail(&self.output(), 60),
                    threads.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(c) = self.child.as_ref() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let _ = self.wait(grace);
        self.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The threads of process `pid`, for a test that gave up waiting for it: each thread's name,
/// state and kernel wait channel (`/proc`), its kernel stack where readable (root), and every
/// thread's user stack from `gdb` when it is installed (the test command installs it).
pub fn thread_dump(pid: u32) -> String {
    let mut out = String::new();
    let task = PathBuf::from(format!("/proc/{pid}/task"));
    let mut tids: Vec<String> = std::fs::read_dir(&task)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    tids.sort_by_key(|t| t.parse::<u64>().unwrap_or(0));
    for tid in &tids {
        let read = |f: &str| {
            std::fs::read_to_string(task.join(tid).join(f))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let stat = read("stat");
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .unwrap_or("?")
            .to_string();
        out.push_str(&format!(
            "thread {tid} {:?} state {state} wchan {}\n",
            read("comm"),
            read("wchan")
        ));
        let stack = read("stack");
        if !stack.is_empty() {
            out.push_str(&format!("{stack}\n"));
        }
    }
    let gdb = Command::new("timeout")
        .args(["30", "gdb", "-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "thread apply all bt 40"])
        .stdin(Stdio::null())
        .output();
    match gdb {
        Ok(o) if o.status.success() => out.push_str(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => out.push_str(&format!(
            "(no user stacks: gdb {}: {})\n",
            o.status,
            tail(&String::from_utf8_lossy(&o.stderr), 5)
        )),
        Err(e) => out.push_str(&format!("(no user stacks: gdb: {e})\n")),
    }
    out
}

/// Last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Poll `f` every 50 ms until it returns `Some`, at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until something accepts TCP connections on `addr`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> bool {
    wait_for(timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            .ok()
            .map(|_| ())
    })
    .is_some()
}

/// A minimal HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body (de-chunked).
    pub body: String,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("HTTP {} body is not JSON: {}", self.status, self.body))
    }
}

/// `GET http://addr/path` with optional bearer token.
pub fn http_get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> Result<Response> {
    http_request(addr, "GET", path, bearer, None)
}

/// A plain HTTP/1.1 request (`Connection: close`).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = bearer {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some((ct, b)) = body {
        req.push_str(&format!(
            "Content-Type: {ct}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    if let Some((_, b)) = body {
        s.write_all(b)?;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP header end in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("bad status line: {head}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunk"))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or_else(|| anyhow!("short chunk"))?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
}

/// Percent-encode a query parameter value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One request received by a [`WebhookReceiver`].
#[derive(Debug, Clone)]
pub struct Received {
    /// When the request was fully read.
    pub at: Instant,
    /// Request path.
    pub path: String,
    /// Request body.
    pub body: String,
}

/// An HTTP server that records every request and answers 200 (the Alertmanager webhook
/// receiver of the tests).
#[derive(Debug)]
pub struct WebhookReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl WebhookReceiver {
    /// Listen on an ephemeral port of 127.0.0.1.
    pub fn start() -> Result<WebhookReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || {
                    let _ = serve_one(stream, &sink);
                });
            }
        });
        Ok(WebhookReceiver { addr, received })
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

fn serve_one(stream: TcpStream, sink: &Mutex<Vec<Received>>) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if let Ok(mut v) = sink.lock() {
            v.push(Received {
                at: Instant::now(),
                path,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
    }
}

/// The development PKI made by `crossline-collector pki init` / `pki issue`.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The PKI directory.
    pub dir: PathBuf,
}

impl Pki {
    /// `pki init DIR` and `pki issue DIR --gateway G` for every gateway.
    pub fn create(collector: &Path, dir: &Path, gateways: &[&str]) -> Result<Pki> {
        run_ok(Command::new(collector).arg("pki").arg("init").arg(dir))?;
        for g in gateways {
            run_ok(
                Command::new(collector)
                    .arg("pki")
                    .arg("issue")
                    .arg(dir)
                    .args(["--gateway", g]),
            )?;
        }
        Ok(Pki {
            dir: dir.to_path_buf(),
        })
    }
}

/// Run a command to completion; fail with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{cmd:?} failed ({}):\n{text}", out.status);
    }
    Ok(text)
}

/// Hex SHA-256 of `text` (collector token files hold the hash, not the token).
pub fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Run `promtool check metrics` on an exposition text; `Err` with its complaints.
pub fn promtool_check_metrics(promtool: &Path, text: &str) -> Result<()> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("promtool stdin"))?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !msg.trim().is_empty() {
        bail!("promtool check metrics: {msg}");
    }
    Ok(())
}

/// Every PromQL expression in the dashboards (`targets[].expr`, template variable queries are
/// not PromQL) and in the rules file (`expr:` lines), with where it came from.
pub fn dashboard_and_rule_exprs(root: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let dir = root.join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f)?)
            .with_context(|| format!("{} is not JSON", f.display()))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for panel in v["panels"].as_array().into_iter().flatten() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((
                        format!("{name}: {}", panel["title"].as_str().unwrap_or("?")),
                        e.to_string(),
                    ));
                }
            }
        }
    }
    let rules = std::fs::read_to_string(dir.join("prometheus/rules.yml"))?;
    let mut name = String::new();
    for line in rules.lines() {
        let t = line.trim();
        if let Some(n) = t
            .strip_prefix("- record:")
            .or_else(|| t.strip_prefix("- alert:"))
        {
            name = n.trim().to_string();
        }
        if let Some(e) = t.strip_prefix("expr:") {
            out.push((format!("rules.yml: {name}"), e.trim().to_string()));
        }
    }
    Ok(out)
}

/// The `label_values(SELECTOR, LABEL)` queries of the dashboards' template variables.
pub fn dashboard_label_queries(root: &Path) -> Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(root.join("dashboards"))? {
        let p = f?.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p)?)?;
        for t in v["templating"]["list"].as_array().into_iter().flatten() {
            let Some(q) = t["definition"].as_str() else {
                continue;
            };
            let Some(inner) = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
            else {
                bail!("{}: unsupported variable query {q}", p.display());
            };
            let Some((selector, label)) = inner.rsplit_once(',') else {
                bail!("{}: bad label_values query {q}", p.display());
            };
            out.push((
                format!("{}: ${}", p.display(), t["name"].as_str().unwrap_or("?")),
                selector.trim().to_string(),
                label.trim().to_string(),
            ));
        }
    }
    Ok(out)
}

/// Values of `label` on series matching `selector`, through Prometheus' HTTP API.
pub fn prometheus_label_values(
    addr: SocketAddr,
    selector: &str,
    label: &str,
) -> Result<Vec<String>> {
    let r = http_get(
        addr,
        &format!(
            "/api/v1/label/{label}/values?match[]={}",
            urlencode(selector)
        ),
        None,
    )?;
    let v = r.json()?;
    if v["status"] != "success" {
        bail!("label_values({selector}, {label}): {}", r.body);
    }
    Ok(v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect())
}

/// Replace Grafana template variables with values Prometheus accepts.
pub fn substitute_grafana(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut e = expr
        .replace("$__rate_interval", "1m")
        .replace("${__rate_interval}", "1m")
        .replace("$__range", "1h")
        .replace("${__range}", "1h")
        .replace("$__interval", "15s");
    for (k, v) in vars {
        e = e
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
    e
}

/// A query through Prometheus' HTTP API: `Ok(number of series)` or the error it returned.
pub fn prometheus_query(addr: SocketAddr, expr: &str) -> Result<usize> {
    let r = http_get(
        addr,
        &format!("/api/v1/query?query={}", urlencode(expr)),
        None,
    )?;
    let v = r.json()?;
    if v["status"] != "success" {
        bail!("{expr}: {}", r.body);
    }
    Ok(v["data"]["result"].as_array().map_or(0, Vec::len))
}

/// A running Alertmanager (Debian's `prometheus-alertmanager`) that sends every group, one per
/// incident, to a webhook at once.
#[derive(Debug)]
pub struct Alertmanager {
    /// Its API address.
    pub addr: SocketAddr,
    /// The process.
    pub proc: Proc,
}

impl Alertmanager {
    /// Start it in `dir` with a webhook receiver at `hook` (`group_wait: 0s`, grouped by
    /// `incident_id`, no clustering).
    pub fn start(bin: &Path, dir: &Path, hook: SocketAddr) -> Result<Alertmanager> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let cfg = dir.join("alertmanager.yml");
        std::fs::write(
            &cfg,
            format!(
                "route:\n  receiver: e2e\n  group_by: ['incident_id']\n  group_wait: 0s\n  \
                 group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: e2e\n    \
                 webhook_configs:\n      - url: http://{hook}/hook\n        send_resolved: false\n"
            ),
        )?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=");
        let proc = Proc::spawn("alertmanager", cmd, &dir.join("alertmanager.log"))?;
        if !wait_listening(addr, Duration::from_secs(20)) {
            bail!("alertmanager not up:\n{}", tail(&proc.output(), 30));
        }
        Ok(Alertmanager { addr, proc })
    }

    /// The collector config snippet that notifies this Alertmanager (fast retries).
    pub fn receiver(&self) -> String {
        format!(
            "[[receiver]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"http://{}\"\n\n\
             [notify]\nretry_min = \"200ms\"\nretry_max = \"2s\"\n",
            self.addr
        )
    }
}

/// First arrival at the webhook of each incident id (from Alertmanager's `incident_id` label),
/// with the alert's annotations.
pub fn webhook_incidents(
    hook: &WebhookReceiver,
) -> std::collections::BTreeMap<String, (Instant, serde_json::Value)> {
    let mut seen = std::collections::BTreeMap::new();
    for r in hook.received() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.body) else {
            continue;
        };
        for a in v["alerts"].as_array().into_iter().flatten() {
            if let Some(id) = a["labels"]["incident_id"].as_str() {
                seen.entry(id.to_string())
                    .or_insert((r.at, a["annotations"].clone()));
            }
        }
    }
    seen
}

/// Files and addresses of a collector set up by [`Collector::setup`].
#[derive(Debug, Clone)]
pub struct CollectorSetup {
    /// Folder of `collector.toml`, `collector.db` and `pki/`.
    pub dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// Mutual-TLS ingest address.
    pub ingest: SocketAddr,
    /// API + metrics address.
    pub api: SocketAddr,
    /// A regulator bearer token.
    pub token: String,
}

/// A running collector.
#[derive(Debug)]
pub struct Collector {
    /// Its setup.
    pub setup: CollectorSetup,
    /// The process.
    pub proc: Proc,
}

impl Collector {
    /// Create the PKI (`pki init`, `pki issue` per gateway) and `collector.toml` in `dir`;
    /// `extra` is appended to the config (receivers, routes, `[notify]`...).
    pub fn setup(
        collector: &Path,
        dir: &Path,
        gateways: &[&str],
        extra: &str,
    ) -> Result<CollectorSetup> {
        std::fs::create_dir_all(dir)?;
        Pki::create(collector, &dir.join("pki"), gateways)?;
        let ingest: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let token = format!("regulator-{}", std::process::id());
        let registry = repo_root().join("examples/registry.toml");
        let config = dir.join("collector.toml");
        let gw = gateways
            .iter()
            .map(|g| format!("{g:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!(
                "listen = \"{ingest}\"\napi_listen = \"{api}\"\ndatabase = \"collector.db\"\n\
                 gateways = [{gw}]\nregistry = \"{}\"\n\n[[token]]\nname = \"e2e-regulator\"\n\
                 role = \"regulator\"\nsha256 = \"{}\"\n\n{extra}\n",
                registry.display(),
                sha256_hex(&token)
            ),
        )?;
        Ok(CollectorSetup {
            dir: dir.to_path_buf(),
            config,
            ingest,
            api,
            token,
        })
    }

    /// Start `crossline-collector run` and wait until its API and ingest ports listen.
    pub fn start(collector: &Path, setup: &CollectorSetup, log_name: &str) -> Result<Collector> {
        let mut cmd = Command::new(collector);
        cmd.arg("run").arg("--config").arg(&setup.config);
        let mut proc = Proc::spawn("collector", cmd, &setup.dir.join(log_name))?;
        for (what, addr, secs) in [("API", setup.api, 20), ("ingest", setup.ingest, 10)] {
            if !wait_listening(addr, Duration::from_secs(secs)) {
                let status = proc.try_status();
                bail!(
                    "collector {what} {addr} not up (exit: {status:?}); log:\n{}",
                    tail(&proc.output(), 40)
                );
            }
        }
        Ok(Collector {
            setup: setup.clone(),
            proc,
        })
    }

    /// Every stored alert, via the API (all pages).
    pub fn alerts(&self) -> Result<Vec<serde_json::Value>> {
        api_items(self.setup.api, &self.setup.token, "/api/v1/alerts")
    }

    /// Every incident, via the API.
    pub fn incidents(&self) -> Result<Vec<serde_json::Value>> {
        api_items(self.setup.api, &self.setup.token, "/api/v1/incidents")
    }

    /// The collector's `/metrics` text, as the regulator sees it (per-enterprise series need
    /// a regulator or operator token).
    pub fn metrics(&self) -> Result<String> {
        Ok(http_get(self.setup.api, "/metrics", Some(&self.setup.token))?.body)
    }
}

/// All `items` of a paged list endpoint.
pub fn api_items(api: SocketAddr, token: &str, path: &str) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    loop {
        let r = http_get(
            api,
            &format!("{path}?limit=1000&offset={}", out.len()),
            Some(token),
        )?;
        if r.status != 200 {
            bail!("GET {path}: HTTP {} {}", r.status, r.body);
        }
        let v = r.json()?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let n = items.len();
        out.extend(items);
        if n < 1000 {
            return Ok(out);
        }
    }
}

/// Write an agent config in `dir` for `gateway`, registry = `examples/registry.toml`, streaming
/// to `ingest` with the PKI in `pki_dir`; `uplink_extra` goes into `[uplink]`, `extra` at the
/// end of the file.
pub fn write_agent_config(
    dir: &Path,
    gateway: &str,
    ingest: SocketAddr,
    pki_dir: &Path,
    uplink_extra: &str,
    extra: &str,
) -> Result<PathBuf> {
    let path = dir.join("agent.toml");
    let registry = repo_root().join("examples/registry.toml");
    std::fs::write(
        &path,
        format!(
            "gateway = \"{gateway}\"\ndomestic = [\"10.0.0.0/8\", \"fd00::/8\"]\nregistry = \"{}\"\n\n\
             [capture]\nworkers = 2\n\n\
             [uplink]\ncollector = \"https://{ingest}\"\nca = \"{pki}/ca.pem\"\n\
             cert = \"{pki}/{gateway}.pem\"\nkey = \"{pki}/{gateway}.key\"\nspool_dir = \"spool\"\n\
             batch_interval = \"100ms\"\nbackoff_min = \"100ms\"\nbackoff_max = \"1s\"\n{uplink_extra}\n\n{extra}\n",
            registry.display(),
            pki = pki_dir.display()
        ),
    )?;
    Ok(path)
}

/// crossline's alert object of an event: `crossline.alert` in the EVE layout agents write,
/// the top-level `alert` in the layout before it; an API alert is its own object.
pub fn crossline_alert(v: &serde_json::Value) -> &serde_json::Value {
    if v["crossline"]["alert"].is_object() {
        &v["crossline"]["alert"]
    } else if v["alert"].is_object() {
        &v["alert"]
    } else {
        v
    }
}

/// The gateway of an event (`crossline.gateway`, also EVE's `host`) or of an API object
/// (`gateway`).
pub fn event_gateway(v: &serde_json::Value) -> &str {
    v["crossline"]["gateway"]
        .as_str()
        .or_else(|| v["gateway"].as_str())
        .unwrap_or("")
}

/// Identity of an alert, the same whether read from the agent's JSON events or from the
/// collector's API (whose `timestamp` is RFC 3339 with milliseconds where the agent wrote
/// EVE's microseconds: both are compared as RFC 3339 milliseconds).
pub fn alert_key(v: &serde_json::Value) -> String {
    let a = crossline_alert(v);
    let ts = v["timestamp"].as_str().unwrap_or("");
    let ts = crossline_config::event::parse_timestamp_micros(ts).map_or_else(
        || ts.to_string(),
        crossline_config::event::format_timestamp_micros,
    );
    format!(
        "{}|{}|{}|{}:{}>{}:{}|{}|{}|{}",
        ts,
        a["kind"].as_str().unwrap_or(""),
        v["flow_id"],
        v["src_ip"].as_str().unwrap_or(""),
        v["src_port"],
        v["dest_ip"].as_str().unwrap_or(""),
        v["dest_port"],
        a["count"],
        a["bytes"],
        a["summary"].as_str().unwrap_or(""),
    )
}

/// The alert events of a JSON-lines file (or of a spool batch payload).
pub fn alert_events(jsonl: &str) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", i + 1))?;
        if v["event_type"] == "alert" {
            out.push(v);
        }
    }
    Ok(out)
}

/// Sorted alert keys.
pub fn sorted_keys(alerts: &[serde_json::Value]) -> Vec<String> {
    let mut k: Vec<String> = alerts.iter().map(alert_key).collect();
    k.sort();
    k
}

/// Write `copies` back-to-back copies of a classic pcap file, each starting `gap_secs` after the
/// previous copy's last packet (so time only moves forward and the copies read as new traffic).
pub fn repeat_pcap(src: &Path, dst: &Path, copies: u32, gap_secs: u32) -> Result<()> {
    let data = std::fs::read(src).with_context(|| format!("read {}", src.display()))?;
    let (header, records) = data
        .split_at_checked(24)
        .ok_or_else(|| anyhow!("{}: too short for a pcap", src.display()))?;
    let little = match header.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) | Some([0x4d, 0x3c, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4]) | Some([0xa1, 0xb2, 0x3c, 0x4d]) => false,
        _ => bail!("{}: not a classic pcap file", src.display()),
    };
    let rd = |b: &[u8]| -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let wr = |v: u32| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    // Span of one copy, in whole seconds.
    let (mut first, mut last) = (u32::MAX, 0u32);
    let mut rest = records;
    while rest.len() >= 16 {
        let ts = rd(&rest[0..4]);
        first = first.min(ts);
        last = last.max(ts);
        let caplen = rd(&rest[8..12]) as usize;
        rest = rest.get(16 + caplen..).unwrap_or(&[]);
    }
    let shift_secs = last
        .saturating_sub(first)
        .saturating_add(1)
        .saturating_add(gap_secs);
    let mut out = header.to_vec();
    for copy in 0..copies {
        let mut rest = records;
        while rest.len() >= 16 {
            let caplen = rd(&rest[8..12]) as usize;
            let Some(rec) = rest.get(..16 + caplen) else {
                break;
            };
            let ts = rd(&rec[0..4]).wrapping_add(copy * shift_secs);
            out.extend_from_slice(&wr(ts));
            out.extend_from_slice(&rec[4..]);
            rest = &rest[16 + caplen..];
        }
    }
    std::fs::write(dst, out)?;
    Ok(())
}

/// Sum of every sample of `name` (any labels) in an exposition text whose label set contains
/// `labels` (e.g. `result="stored"`).
pub fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter(|l| labels.is_empty() || l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Percentile (0-100) of durations, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The labelled demo capture (`examples/demo.pcap`, or `$CROSSLINE_E2E_PCAP`), or skip (panic
/// under CI).
pub fn demo_pcap() -> Option<PathBuf> {
    let p = std::env::var_os("CROSSLINE_E2E_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("examples/demo.pcap"));
    if p.is_file() {
        Some(p)
    } else {
        skip("examples/demo.pcap not found (generated by the traffic generator)");
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_with_and_without_chunks() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").expect("plain");
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!((r.status, r.body.as_str()), (404, "abcde"));
    }

    #[test]
    fn pcap_repeat_shifts_timestamps() {
        let dir = TempDir::new("pcap");
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&65535u32.to_le_bytes());
        pcap.extend_from_slice(&1u32.to_le_bytes());
        for (ts, body) in [(100u32, &b"ab"[..]), (101, &b"cde"[..])] {
            pcap.extend_from_slice(&ts.to_le_bytes());
            pcap.extend_from_slice(&0u32.to_le_bytes());
            pcap.extend_from_slice(&(body.len() as u32).to_le_bytes());
            pcap.extend_from_slice(&(body.len() as u32).to_le_bytes());
            pcap.extend_from_slice(body);
        }
        let src = dir.path().join("a.pcap");
        let dst = dir.path().join("b.pcap");
        std::fs::write(&src, &pcap).expect("write");
        repeat_pcap(&src, &dst, 3, 998).expect("repeat"); // span 1 s + 1 + 998 = 1000 s apart
        let out = std::fs::read(&dst).expect("read");
        assert_eq!(out.len(), 24 + 3 * (pcap.len() - 24));
        let ts_of =
            |off: usize| u32::from_le_bytes([out[off], out[off + 1], out[off + 2], out[off + 3]]);
        // Records: 16+2, 16+3 per copy.
        assert_eq!(ts_of(24), 100);
        assert_eq!(ts_of(24 + 18 + 19), 1100);
        assert_eq!(ts_of(24 + 2 * 37 + 18), 2101);
    }

    /// A process a test gives up on is killed, and the error names its threads with their
    /// state, and their user stacks when gdb is installed.
    #[test]
    fn a_process_that_does_not_exit_is_reported_with_its_threads() {
        let dir = TempDir::new("hung");
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        let mut p = Proc::spawn("sleeper", cmd, &dir.path().join("sleep.log")).expect("spawn");
        let pid = p.pid();
        let e = p
            .wait(Duration::from_millis(200))
            .expect_err("sleep 60 does not exit in 200 ms")
            .to_string();
        assert!(e.contains("sleeper did not exit within 200ms"), "{e}");
        assert!(
            e.contains(&format!("thread {pid} \"sleep\" state S")),
            "no thread line for {pid}: {e}"
        );
        // gdb attaches to a process it did not start only as root, or where Yama allows it.
        let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
            .map_or(true, |v| v.trim() == "0");
        let gdb = Command::new("gdb").arg("--version").output();
        if gdb.is_ok_and(|o| o.status.success()) && (is_root() || yama) {
            assert!(e.contains("#0 "), "gdb is installed, yet no stack: {e}");
        } else {
            eprintln!(
                "gdb not installed or not allowed to attach: the user stacks were not checked"
            );
        }
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "sleep {pid} was killed and reaped"
        );
    }

    #[test]
    fn metric_sums_and_percentiles() {
        let text = "# HELP x\nx_total{a=\"1\",result=\"stored\"} 3\nx_total{result=\"dup\"} 2\nx_totalz 9\n";
        assert_eq!(metric_sum(text, "x_total", ""), 5.0);
        assert_eq!(metric_sum(text, "x_total", "result=\"stored\""), 3.0);
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&d, 99.0), Duration::from_millis(99));
    }

    #[test]
    fn grafana_variables_are_substituted() {
        assert_eq!(
            substitute_grafana(
                "sum(rate(x{e=\"$enterprise\",g=~\"${gateway}\"}[$__rate_interval]))",
                &[("enterprise", "acme"), ("gateway", ".*")]
            ),
            "sum(rate(x{e=\"acme\",g=~\".*\"}[1m]))"
        );
    }

    #[test]
    fn every_dashboard_target_uses_the_datasource_variable() {
        let dir = repo_root().join("dashboards");
        for f in [
            "regulator-overview.json",
            "gateway-health.json",
            "enterprise-self-check.json",
        ] {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join(f)).expect("read"))
                    .expect("json");
            assert!(v["id"].is_null() && v["uid"].is_string(), "{f}: id/uid");
            let vars = v["templating"]["list"].as_array().expect("templating");
            assert!(
                vars.iter()
                    .any(|t| t["name"] == "datasource" && t["type"] == "datasource"),
                "{f}: no datasource variable"
            );
            for p in v["panels"].as_array().expect("panels") {
                assert_eq!(
                    p["datasource"]["uid"], "${datasource}",
                    "{f}: {}",
                    p["title"]
                );
                for t in p["targets"].as_array().expect("targets") {
                    assert_eq!(
                        t["datasource"]["uid"], "${datasource}",
                        "{f}: {}",
                        p["title"]
                    );
                }
            }
        }
        let exprs = dashboard_and_rule_exprs(&repo_root()).expect("exprs");
        assert!(exprs.len() > 30, "only {} expressions found", exprs.len());
        let vars = dashboard_label_queries(&repo_root()).expect("variables");
        assert_eq!(vars.len(), 3, "{vars:?}");
        assert!(vars
            .iter()
            .any(|(_, sel, label)| label == "enterprise" && sel.contains("enterprise!=")));
    }
}
