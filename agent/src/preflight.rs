//! `check`: what `run` will use, tried before it starts. The configuration itself is validated
//! by `crossline_config::check`; this looks at the machine: the BPF filter compiled by libpcap
//! for each interface's link type, interfaces that exist, the metrics address free, the uplink
//! certificates readable, signed by the CA and not expired, the spool directory writable.

use crate::uplink::client::tls_config;
use crossline_config::AgentConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// Fewer days than this before a certificate expires is a warning.
pub const CERT_WARN_DAYS: i64 = 30;

/// The outcome of the checks: one line per item, and how many failed.
#[derive(Debug, Default, Clone)]
pub struct Preflight {
    /// `ok`, `warning` or `error` lines, in order.
    pub lines: Vec<String>,
    /// Failed checks (`run` would fail or misbehave).
    pub errors: usize,
}

impl Preflight {
    fn ok(&mut self, what: String) {
        self.lines.push(format!("  ok       {what}"));
    }
    fn warn(&mut self, what: String) {
        self.lines.push(format!("  warning  {what}"));
    }
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.lines.push(format!("  error    {what}"));
    }

    /// The report `check` prints.
    pub fn render(&self) -> String {
        let mut out = String::from("run checks:\n");
        for l in &self.lines {
            let _ = writeln!(out, "{l}");
        }
        if self.errors > 0 {
            let _ = writeln!(
                out,
                "{} check{} failed: `run` would not work with this configuration",
                self.errors,
                if self.errors == 1 { "" } else { "s" }
            );
        }
        out
    }
}

/// Run every check for `cfg`.
pub fn check(cfg: &AgentConfig) -> Preflight {
    let mut p = Preflight::default();
    interfaces_and_filter(cfg, &mut p);
    if let Some(addr) = cfg.metrics.listen {
        match std::net::TcpListener::bind(addr) {
            Ok(_) => p.ok(format!("metrics.listen {addr}: free")),
            // In use: `run` would fail, unless it is this agent's own listener (a `check` run
            // next to a running agent after editing its config).
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => p.warn(format!(
                "metrics.listen {addr}: in use ({e}); `run` cannot start while another process \
                 (a running crossline-agent?) holds it"
            )),
            Err(e) => p.error(format!(
                "metrics.listen {addr}: cannot listen ({e}); expected a free local address"
            )),
        }
    }
    if let Some(u) = &cfg.uplink {
        for url in &u.collectors {
            match crate::uplink::client::Endpoint::parse(url, u.server_name.as_deref()) {
                Ok(e) => p.ok(format!(
                    "uplink.collector {url}: connects to {}:{}, certificate name {}",
                    e.host,
                    e.port,
                    u.server_name.as_deref().unwrap_or(&e.host)
                )),
                Err(e) => p.error(format!("uplink.collector: {e}")),
            }
        }
        certificates(&u.ca, &u.cert, &u.key, &mut p);
        writable("uplink.spool_dir", &u.spool_dir, &mut p);
    }
    p
}

/// Link type of `interface` as libpcap reports it (opening the device needs `CAP_NET_RAW`;
/// without it, from `/sys/class/net/NAME/type`).
fn linktype(interface: &str) -> pcap::Linktype {
    if let Ok(cap) = pcap::Capture::from_device(interface).and_then(|c| c.open()) {
        return cap.get_datalink();
    }
    let arphrd = std::fs::read_to_string(format!("/sys/class/net/{interface}/type"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    match arphrd {
        // ARPHRD_NONE (tun, wireguard) and ARPHRD_RAWIP.
        Some(65534) | Some(519) => pcap::Linktype(12),
        _ if interface == "any" => pcap::Linktype::LINUX_SLL,
        // Ethernet, loopback (Linux gives it an Ethernet header) and the rest.
        _ => pcap::Linktype::ETHERNET,
    }
}

fn link_name(l: pcap::Linktype) -> String {
    l.get_name().unwrap_or_else(|_| format!("DLT {}", l.0))
}

fn interfaces_and_filter(cfg: &AgentConfig, p: &mut Preflight) {
    let devices: Vec<String> = match pcap::Device::list() {
        Ok(d) => d.into_iter().map(|d| d.name).collect(),
        Err(e) => {
            p.error(format!(
                "capture.interfaces: libpcap cannot list devices ({e})"
            ));
            Vec::new()
        }
    };
    let mut linktypes = Vec::new();
    for i in &cfg.capture.interfaces {
        if devices.iter().any(|d| d == i) || Path::new("/sys/class/net").join(i).exists() {
            let l = linktype(i);
            p.ok(format!(
                "interface {i}: present, link type {}",
                link_name(l)
            ));
            linktypes.push((i.clone(), l));
        } else {
            p.error(format!(
                "capture.interfaces: {i:?} does not exist on this machine; expected one of: {}",
                devices.join(", ")
            ));
        }
    }
    let Some(filter) = &cfg.capture.filter else {
        return;
    };
    // Offline (`analyze`) captures are Ethernet as a rule; check the filter for that too.
    if linktypes.is_empty() {
        linktypes.push(("(offline captures)".to_string(), pcap::Linktype::ETHERNET));
    }
    for (iface, l) in linktypes {
        let compiled = pcap::Capture::dead(l).and_then(|c| c.compile(filter, true).map(|_| ()));
        match compiled {
            Ok(()) => p.ok(format!(
                "capture.filter {filter:?}: compiles for {iface} ({})",
                link_name(l)
            )),
            Err(e) => p.error(format!(
                "capture.filter {filter:?}: libpcap refuses it for {iface} ({}): {e}",
                link_name(l)
            )),
        }
    }
}

fn certificates(ca: &Path, cert: &Path, key: &Path, p: &mut Preflight) {
    for (what, path) in [
        ("uplink.ca", ca),
        ("uplink.cert", cert),
        ("uplink.key", key),
    ] {
        if let Err(e) = std::fs::File::open(path) {
            p.error(format!("{what} {}: cannot be read ({e})", path.display()));
            return;
        }
    }
    // Readable PEM, key matching the certificate.
    if let Err(e) = tls_config(ca, cert, key) {
        p.error(e.to_string());
        return;
    }
    let (roots, chain) = match (pem_certs(ca), pem_certs(cert)) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(e), _) | (_, Err(e)) => {
            p.error(e);
            return;
        }
    };
    let Some(leaf) = chain.first() else {
        p.error(format!("uplink.cert {}: no certificate", cert.display()));
        return;
    };
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        let _ = store.add(r);
    }
    let provider = crate::uplink::client::provider();
    let verifier = match rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(store),
        provider,
    )
    .build()
    {
        Ok(v) => v,
        Err(e) => {
            p.error(format!("uplink.ca {}: {e}", ca.display()));
            return;
        }
    };
    let verified = verifier.verify_client_cert(leaf, &chain[1..], UnixTime::now());
    let days_left = x509_parser::parse_x509_certificate(leaf.as_ref())
        .ok()
        .map(|(_, c)| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            (c.validity().not_after.timestamp() - now).div_euclid(86_400)
        });
    match verified {
        Ok(_) => {
            let left = days_left.unwrap_or(i64::MAX);
            let text = format!(
                "uplink.cert {}: signed by {}, {} days left",
                cert.display(),
                ca.display(),
                days_left.map_or("?".to_string(), |d| d.to_string())
            );
            if left < CERT_WARN_DAYS {
                p.warn(format!("{text}: renew it soon"));
            } else {
                p.ok(text);
            }
        }
        Err(e) => p.error(format!(
            "uplink.cert {}: not accepted with uplink.ca {} ({e}){}",
            cert.display(),
            ca.display(),
            days_left
                .filter(|d| *d < 0)
                .map(|d| format!("; expired {} days ago", -d))
                .unwrap_or_default()
        )),
    }
}

fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))
}

/// `dir` (or the nearest existing folder it would be created in) accepts a new file.
fn writable(what: &str, dir: &Path, p: &mut Preflight) {
    let mut at = dir;
    while !at.exists() {
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            // A relative path: it is created in the working directory.
            Some(_) => at = Path::new("."),
            None => break,
        }
    }
    let probe = at.join(format!(".crossline-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            if at == dir {
                p.ok(format!("{what} {}: writable", dir.display()));
            } else {
                p.ok(format!(
                    "{what} {}: will be created in {} (writable)",
                    dir.display(),
                    at.display()
                ));
            }
        }
        Err(e) => p.error(format!(
            "{what} {}: cannot write in {} ({e}); expected a folder the agent's user can write",
            dir.display(),
            at.display()
        )),
    }
}
