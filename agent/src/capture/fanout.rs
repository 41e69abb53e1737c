//! One of the agent's two `unsafe` shims (the other is [`super::mapped`]): join a libpcap socket
//! to a Linux `PACKET_FANOUT` group.
//!
//! libpcap has no fanout API, so after `pcap_activate` we call
//! `setsockopt(fd, SOL_PACKET, PACKET_FANOUT, group | (mode << 16))` on the handle's
//! `AF_PACKET` socket. Every handle of a group then receives a disjoint share of the interface's
//! packets, split by the kernel's flow hash (mode `PACKET_FANOUT_HASH`).
//!
//! No `PACKET_FANOUT_FLAG_DEFRAG`: with it the kernel reassembles IP fragments in the capture
//! path, holds them in its own bounded queue and drops what it cannot complete, so a flood of
//! incomplete first fragments made every fragmented export invisible (nothing counted). The
//! capture path sees fragments as they are on the wire. The kernel's flow hash
//! (`skb_get_hash` -> flow dissector) does not read ports from a fragment, so every fragment of
//! one datagram hashes on (addresses, protocol) alone and reaches the same handle, whose
//! fragment map ([`crate::flow::frag`]) attributes them; the software dispatcher then sends them
//! to the worker of the first fragment's flow.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

const SOL_PACKET: libc::c_int = 263;
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_FANOUT_HASH: u32 = 0;

/// Join `fd` (an `AF_PACKET` socket) to fanout group `group` in hash mode.
pub fn join_hash_group(fd: RawFd, group: u16) -> std::io::Result<()> {
    let value: u32 = u32::from(group) | (PACKET_FANOUT_HASH << 16);
    // SAFETY: `value` is a live, properly aligned u32 for the duration of the call and the
    // length passed is its size; `setsockopt` does not retain the pointer. An invalid `fd` is
    // reported as an error (EBADF/ENOTSOCK), not undefined behaviour.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            SOL_PACKET,
            PACKET_FANOUT,
            (&value as *const u32).cast::<libc::c_void>(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fd_is_an_error_not_a_crash() {
        assert!(join_hash_group(-1, 1).is_err());
    }
}
