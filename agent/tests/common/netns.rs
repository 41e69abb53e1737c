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
