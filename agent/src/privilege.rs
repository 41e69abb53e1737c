//! Least privilege for `run` without systemd: started as root, the agent switches to an
//! unprivileged user (`[capture] user`, default `crossline` when that user exists) and keeps
//! `CAP_NET_RAW` alone (effective, permitted and bounding sets; no ambient or inheritable
//! capability; `no_new_privs` set). Started as another user it checks that it holds
//! `CAP_NET_RAW` and says what is missing when it does not.
//!
//! The drop happens while the process is still single-threaded, before the uplink, metrics
//! and capture threads start: Linux credentials belong to a thread, and every thread started
//! afterwards inherits the reduced set. `CAP_NET_RAW` is enough to open the libpcap handles
//! (packet socket, promiscuous membership, ring, BPF filter and `PACKET_FANOUT`), so they are
//! opened after the drop and every file the agent creates (spool, `--out`) belongs to the
//! service user. The system calls go through `rustix` (safe wrappers; no `unsafe` here).

use rustix::thread::{CapabilitySet, CapabilitySets};

/// Bit of `CAP_NET_RAW` in the capability masks of `/proc/PID/status`.
pub const CAP_NET_RAW_MASK: u64 = 1 << 13;

/// The user the agent runs as when `[capture] user` is not set.
pub const DEFAULT_USER: &str = "crossline";

/// A user account from `/etc/passwd` and its groups from `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Supplementary groups (those listing the user as a member), primary group excluded.
    pub groups: Vec<u32>,
}

/// What [`drop_privileges`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Switched from root to this account with `CAP_NET_RAW` only.
    Dropped(Account),
    /// Still root, with every capability; the reason is worth a warning.
    StayedRoot(String),
    /// Not started as root; `CAP_NET_RAW` is present.
    Unprivileged { uid: u32 },
}

/// Why the agent cannot capture with least privilege.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("capture.user = {user:?}: no such user in /etc/passwd; create it (`adduser --system --group {user}`) or set [capture] user to an existing user (\"root\" keeps root)")]
    NoSuchUser { user: String },
    #[error("capture.user = {user:?} (uid {target}), but the agent runs as uid {uid} and cannot switch users: start it as root or as {user} itself with CAP_NET_RAW")]
    CannotSwitch { user: String, target: u32, uid: u32 },
    #[error("live capture on {interfaces} needs CAP_NET_RAW, which this process (uid {uid}) does not have: run it as root (it then switches to the [capture] user), under the crossline-agent.service unit (AmbientCapabilities=CAP_NET_RAW), or grant it with `setcap cap_net_raw+ep` on the binary")]
    MissingNetRaw { uid: u32, interfaces: String },
    #[error("cannot switch to user {user} (uid {uid}): {call} failed: {source}")]
    Syscall {
        user: String,
        uid: u32,
        call: &'static str,
        source: std::io::Error,
    },
    #[error("cannot switch users with {threads} threads running (credentials are per thread): the drop must come before any thread starts")]
    Threads { threads: usize },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("after switching to {user}: capabilities are effective {effective:#x} permitted {permitted:#x}, expected only CAP_NET_RAW ({CAP_NET_RAW_MASK:#x})")]
    Verify {
        user: String,
        effective: u64,
        permitted: u64,
    },
}

/// Find `name` in the text of `/etc/passwd` and its supplementary groups in `/etc/group`.
/// Malformed lines are skipped.
pub fn lookup(passwd: &str, group: &str, name: &str) -> Option<Account> {
    let (uid, gid) = passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != name {
            return None;
        }
        let _password = f.next()?;
        let uid = f.next()?.parse::<u32>().ok()?;
        let gid = f.next()?.parse::<u32>().ok()?;
        Some((uid, gid))
    })?;
    let mut groups: Vec<u32> = group
        .lines()
        .filter_map(|line| {
            let mut f = line.split(':');
            let _name = f.next()?;
            let _password = f.next()?;
            let g = f.next()?.parse::<u32>().ok()?;
            let members = f.next()?;
            members.split(',').any(|m| m.trim() == name).then_some(g)
        })
        .filter(|g| *g != gid)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    Some(Account {
        name: name.to_string(),
        uid,
        gid,
        groups,
    })
}

fn read(path: &str) -> Result<String, PrivilegeError> {
    std::fs::read_to_string(path).map_err(|source| PrivilegeError::Read {
        path: path.to_string(),
        source,
    })
}

fn system_lookup(name: &str) -> Result<Option<Account>, PrivilegeError> {
    let passwd = read("/etc/passwd")?;
    // A system without /etc/group still has users; they just have no supplementary groups.
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    Ok(lookup(&passwd, &group, name))
}

/// A hexadecimal field of `/proc/self/status` (`CapEff`, `CapBnd`, ...).
pub fn status_mask(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        u64::from_str_radix(v.trim(), 16).ok()
    })
}

fn status_threads(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
}

/// Switch to the configured user keeping `CAP_NET_RAW` only (started as root), or check that
/// `CAP_NET_RAW` is there (started as another user). `user` is `[capture] user`, `interfaces`
/// the interfaces to capture on (named in the error).
pub fn drop_privileges(
    user: Option<&str>,
    interfaces: &[String],
) -> Result<Outcome, PrivilegeError> {
    let uid = rustix::process::geteuid().as_raw();
    if uid != 0 {
        if let Some(name) = user.filter(|u| *u != "root") {
            let account = system_lookup(name)?.ok_or_else(|| PrivilegeError::NoSuchUser {
                user: name.to_string(),
            })?;
            if account.uid != uid {
                return Err(PrivilegeError::CannotSwitch {
                    user: name.to_string(),
                    target: account.uid,
                    uid,
                });
            }
        }
        let status = read("/proc/self/status")?;
        if !interfaces.is_empty()
            && status_mask(&status, "CapEff").unwrap_or(0) & CAP_NET_RAW_MASK == 0
        {
            return Err(PrivilegeError::MissingNetRaw {
                uid,
                interfaces: interfaces.join(", "),
            });
        }
        return Ok(Outcome::Unprivileged { uid });
    }
    let account = match user {
        Some("root") => {
            return Ok(Outcome::StayedRoot(
                "capture.user = \"root\" keeps every capability".to_string(),
            ))
        }
        Some(name) => system_lookup(name)?.ok_or_else(|| PrivilegeError::NoSuchUser {
            user: name.to_string(),
        })?,
        None => match system_lookup(DEFAULT_USER)? {
            Some(a) => a,
            None => {
                return Ok(Outcome::StayedRoot(format!(
                    "no user {DEFAULT_USER:?} on this system; create it (`adduser --system --group {DEFAULT_USER}`) or set [capture] user"
                )))
            }
        },
    };
    if account.uid == 0 {
        return Ok(Outcome::StayedRoot(format!(
            "capture.user = {:?} has uid 0",
            account.name
        )));
    }
    let threads = status_threads(&read("/proc/self/status")?).unwrap_or(1);
    if threads != 1 {
        return Err(PrivilegeError::Threads { threads });
    }
    switch(&account)?;
    Ok(Outcome::Dropped(account))
}

fn switch(a: &Account) -> Result<(), PrivilegeError> {
    use rustix::process::{Gid, Uid};
    use rustix::thread as t;
    let fail = |call: &'static str| {
        let user = a.name.clone();
        let uid = a.uid;
        move |e: rustix::io::Errno| PrivilegeError::Syscall {
            user,
            uid,
            call,
            source: e.into(),
        }
    };
    // Bounding set first: dropping from it needs CAP_SETPCAP, which root still has.
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40)
        .min(63);
    for cap in 0..=last {
        let set = CapabilitySet::from_bits_retain(1 << cap);
        if set != CapabilitySet::NET_RAW && t::capability_is_in_bounding_set(set).unwrap_or(false) {
            t::remove_capability_from_bounding_set(set).map_err(fail("prctl(PR_CAPBSET_DROP)"))?;
        }
    }
    // Ambient capabilities would survive an exec; there should be none, make sure.
    t::clear_ambient_capability_set().map_err(fail("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"))?;
    // Keep the permitted set across the uid change (it would be cleared otherwise).
    t::set_keep_capabilities(true).map_err(fail("prctl(PR_SET_KEEPCAPS)"))?;
    let gids: Vec<Gid> = a.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    t::set_thread_groups(&gids).map_err(fail("setgroups"))?;
    let gid = Gid::from_raw(a.gid);
    t::set_thread_res_gid(gid, gid, gid).map_err(fail("setresgid"))?;
    let uid = Uid::from_raw(a.uid);
    t::set_thread_res_uid(uid, uid, uid).map_err(fail("setresuid"))?;
    t::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::NET_RAW,
            permitted: CapabilitySet::NET_RAW,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(fail("capset"))?;
    t::set_keep_capabilities(false).map_err(fail("prctl(PR_SET_KEEPCAPS)"))?;
    // Nothing the agent starts later may gain privileges (setuid binaries, file capabilities).
    t::set_no_new_privs(true).map_err(fail("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    let now = t::capabilities(None).map_err(fail("capget"))?;
    if now.effective != CapabilitySet::NET_RAW || now.permitted != CapabilitySet::NET_RAW {
        return Err(PrivilegeError::Verify {
            user: a.name.clone(),
            effective: now.effective.bits(),
            permitted: now.permitted.bits(),
        });
    }
    Ok(())
}

/// One line for the log after [`drop_privileges`].
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Dropped(a) => format!(
            "running as user {} (uid {}, gid {}) with CAP_NET_RAW only",
            a.name, a.uid, a.gid
        ),
        Outcome::StayedRoot(why) => {
            format!("warning: running as root with every capability: {why}")
        }
        Outcome::Unprivileged { uid } => format!("running as uid {uid} with CAP_NET_RAW"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        broken line\n\
        crossline:x:998:997::/var/lib/crossline:/usr/sbin/nologin\n\
        other:x:notanumber:1::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
        crossline:x:997:\n\
        ssl-cert:x:110:postgres,crossline\n\
        pcap:x:120:crosslinex\n\
        garbage\n";

    #[test]
    fn finds_user_and_supplementary_groups() {
        let a = lookup(PASSWD, GROUP, "crossline").expect("found");
        assert_eq!(
            a,
            Account {
                name: "crossline".into(),
                uid: 998,
                gid: 997,
                groups: vec![110],
            }
        );
    }

    #[test]
    fn missing_or_malformed_user_is_none() {
        assert_eq!(lookup(PASSWD, GROUP, "nobody-here"), None);
        assert_eq!(lookup(PASSWD, GROUP, "other"), None);
        assert_eq!(lookup(PASSWD, GROUP, "cross"), None);
    }

    #[test]
    fn status_fields() {
        let s = "Name:\tx\nThreads:\t3\nCapInh:\t0000000000000000\nCapEff:\t0000000000002000\n";
        assert_eq!(status_mask(s, "CapEff"), Some(CAP_NET_RAW_MASK));
        assert_eq!(status_mask(s, "CapInh"), Some(0));
        assert_eq!(status_mask(s, "CapBnd"), None);
        assert_eq!(status_threads(s), Some(3));
    }

    #[test]
    fn net_raw_mask_matches_rustix() {
        assert_eq!(CapabilitySet::NET_RAW.bits(), CAP_NET_RAW_MASK);
    }
}
