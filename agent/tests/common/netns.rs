//! A network namespace with a veth pair for the live-capture tests (root only), and the small
//! shell helpers they share.

use std::process::{Command, Stdio};

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Removes the namespace and the host veth on drop.
pub struct Netns {
    pub ns: String,
    pub host: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        sh(&["ip", "link", "del", &self.host]);
        sh(&["ip", "netns", "del", &self.ns]);
    }
}

pub fn setup(ns: &str, host: &str, peer: &str, mtu: u32) -> Netns {
    let mtu = mtu.to_string();
    let guard = Netns {
        ns: ns.to_string(),
        host: host.to_string(),
    };
    for cmd in [
        vec!["ip", "netns", "add", ns],
        vec![
            "ip", "link", "add", host, "type", "veth", "peer", "name", peer,
        ],
        vec!["ip", "link", "set", peer, "netns", ns],
        vec!["ip", "link", "set", host, "mtu", &mtu, "up"],
        vec![
            "ip", "netns", "exec", ns, "ip", "link", "set", peer, "mtu", &mtu, "up",
        ],
    ] {
        assert!(sh(&cmd), "setup step failed: {cmd:?}");
    }
    // Keep the kernel's own IPv6 chatter (router solicitations, MLD) off the link.
    sh(&[
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{host}.disable_ipv6=1"),
    ]);
    sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{peer}.disable_ipv6=1"),
    ]);
    guard
}

/// `crossline-agent run` started by a test, its standard error collected as it comes.
pub struct LiveAgent {
    pub child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LiveAgent {
    /// Start `run --config cfg --out out` and wait (at most 15 s) until it says it captures.
    pub fn start(cfg: &std::path::Path, out: &std::path::Path) -> LiveAgent {
        use std::io::{BufRead, BufReader};
        use std::time::{Duration, Instant};
        let mut child = Command::new(env!("CARGO_BIN_EXE_crossline-agent"))
            .args(["run", "--config"])
            .arg(cfg)
            .arg("--out")
            .arg(out)
            .stderr(Stdio::piped())
            .spawn()
            .expect("agent starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = log2.lock() {
                    l.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.contains("capturing on") => return LiveAgent { child, log },
                Ok(_) => {}
                Err(_) if Instant::now() > deadline => {
                    let _ = child.kill();
                    panic!("agent did not start capturing: {:?}", log.lock());
                }
                Err(_) => {
                    if let Ok(Some(st)) = child.try_wait() {
                        panic!("agent exited early ({st}): {:?}", log.lock());
                    }
                }
            }
        }
    }

    /// Send `signal` (`-TERM`, `-STOP`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        assert!(
            sh(&["kill", signal, &self.child.id().to_string()]),
            "kill {signal}"
        );
    }

    /// Wait (at most 20 s) for the agent to exit; its status and everything it logged.
    pub fn wait(mut self) -> (std::process::ExitStatus, Vec<String>) {
        use std::time::{Duration, Instant};
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("agent did not exit: {:?}", self.log.lock());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader thread sees the end of the pipe right after the exit.
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        (status, log)
    }
}

/// A live test that cannot run on this machine: a failure under `CI=true` (`what` names the
/// test in the message), a printed SKIPPED elsewhere.
pub fn skip(what: &str, why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} cannot run (CI=true): {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// Whether a test that replays packets into a veth pair can run: root, `ip` and `tcpreplay`;
/// otherwise [`skip`] says why and this is false.
pub fn can_replay(what: &str) -> bool {
    if !is_root() {
        skip(what, "not root");
        return false;
    }
    for tool in ["ip", "tcpreplay"] {
        if !have(tool) {
            skip(what, &format!("{tool} not installed"));
            return false;
        }
    }
    true
}
