//! Live capture on an interface through libpcap (TPACKET_V3: no immediate mode), kernel buffer
//! size, snaplen, optional BPF filter, non-blocking reads (an empty read returns [`Status::Timeout`] at once;
//! the capture thread then waits in `poll` until the kernel hands over a block of packets or a
//! few milliseconds pass: [`LiveHandle::wait_readable`]) so the capture thread sees shutdown and can
//! flush partial batches and tick the clock. Several handles on one interface are joined into one `PACKET_FANOUT` group
//! ([`super::fanout`]); when that fails, a single handle is used and the software dispatcher
//! spreads flows over the workers alone.

use super::counter::WrapCounter;
use super::{ts_micros, CaptureError, DropTotals, PacketSource, RawPacket, Status};
use crossline_config::agent::CaptureConfig;
use pcap::{Active, Capture};
use std::os::fd::AsRawFd;

/// Read timeout of live handles, milliseconds (only used by libpcap before non-blocking mode
/// is set).
pub const READ_TIMEOUT_MS: i32 = 100;

/// One live libpcap handle.
pub struct LiveHandle {
    interface: String,
    cap: Capture<Active>,
    linktype: i32,
    received: WrapCounter,
    kernel: WrapCounter,
    interface_drops: WrapCounter,
    /// Packets this handle has handed out.
    delivered: u64,
}

impl std::fmt::Debug for LiveHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHandle")
            .field("interface", &self.interface)
            .field("linktype", &self.linktype)
            .finish_non_exhaustive()
    }
}

fn open_handle(cfg: &CaptureConfig, interface: &str) -> Result<LiveHandle, CaptureError> {
    let err = |e: pcap::Error| CaptureError::Interface {
        interface: interface.to_string(),
        message: e.to_string(),
    };
    // No immediate mode (bench/README.md, live benchmark): in immediate mode libpcap uses
    // TPACKET_V2, whose ring slots are fixed-size and sized for the snaplen, so 64 MiB at the
    // default snaplen of 65535 is only about 1,000 packets and a burst is dropped in the kernel
    // (the agent lost 1% at 300 kpps on a veth where tcpdump lost nothing at 400 kpps). Without
    // it libpcap uses TPACKET_V3 (variable-size frames in blocks): the same 64 MiB holds
    // hundreds of thousands of small packets. Blocks are handed over when full or after the
    // read timeout, so packets reach the workers at most `READ_TIMEOUT_MS` late.
    let mut cap = Capture::from_device(interface)
        .map_err(err)?
        .promisc(true)
        .snaplen(i32::try_from(cfg.snaplen).unwrap_or(i32::MAX))
        .buffer_size(i32::try_from(cfg.buffer_bytes).unwrap_or(i32::MAX))
        .timeout(READ_TIMEOUT_MS)
        .open()
        .map_err(err)?
        // Non-blocking: libpcap's poll() can block without a timeout in immediate mode, and
        // the capture thread must see shutdown and keep the coarse clock ticking.
        .setnonblock()
        .map_err(err)?;
    if let Some(f) = &cfg.filter {
        cap.filter(f, true).map_err(|e| CaptureError::Filter {
            filter: f.clone(),
            source_name: interface.to_string(),
            message: e.to_string(),
        })?;
    }
    let linktype = cap.get_datalink().0;
    Ok(LiveHandle {
        interface: interface.to_string(),
        cap,
        linktype,
        received: WrapCounter::new(),
        kernel: WrapCounter::new(),
        interface_drops: WrapCounter::new(),
        delivered: 0,
    })
}

/// Open `handles` handles on `interface` in one fanout group (`group`). Returns the handles
/// and whether fanout is active (false: one handle, software dispatch only).
pub fn open_group(
    cfg: &CaptureConfig,
    interface: &str,
    handles: usize,
    group: u16,
) -> Result<(Vec<LiveHandle>, bool), CaptureError> {
    let first = open_handle(cfg, interface)?;
    if handles <= 1 {
        return Ok((vec![first], false));
    }
    if super::fanout::join_hash_group(first.cap.as_raw_fd(), group).is_err() {
        return Ok((vec![first], false));
    }
    let mut out = vec![first];
    for _ in 1..handles {
        let h = match open_handle(cfg, interface) {
            Ok(h) => h,
            Err(_) => break,
        };
        if super::fanout::join_hash_group(h.cap.as_raw_fd(), group).is_err() {
            break;
        }
        out.push(h);
    }
    Ok((out, true))
}

impl LiveHandle {
    /// Interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Wait up to `timeout` for the kernel to hand this handle packets (a retired block of
    /// its ring): `poll` on the handle's socket. A wait that fails (a signal) just ends early.
    pub fn wait_readable(&self, timeout: std::time::Duration) {
        let mut fds = [rustix::event::PollFd::new(
            &self.cap,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
    }

    /// Packets the kernel put in this handle's buffer that it has not handed out, by the
    /// totals `drops` (from [`PacketSource::drops`]) just read: the kernel's count of packets
    /// that passed the filter includes those it dropped, so the rest of it are either handed
    /// out or still waiting in the buffer.
    pub fn unread(&self, drops: &DropTotals) -> u64 {
        drops
            .received
            .saturating_sub(drops.kernel)
            .saturating_sub(self.delivered)
    }
}

impl PacketSource for LiveHandle {
    fn read(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RawPacket<'_>),
    ) -> Result<Status, CaptureError> {
        // Up to `max` packets of the ring's blocks the kernel has handed over, in one call
        // (`pcap_dispatch`) instead of one `pcap_next_ex` per packet; none when no block is
        // ready (non-blocking).
        let linktype = self.linktype;
        let mut n = 0usize;
        let read = self.cap.dispatch(Some(max), |p| {
            n += 1;
            f(RawPacket {
                ts_micros: ts_micros(p.header.ts.tv_sec, p.header.ts.tv_usec),
                orig_len: p.header.len,
                data: p.data,
                linktype,
                shared: None,
            });
        });
        self.delivered += n as u64;
        match read {
            Ok(_) if n > 0 => Ok(Status::Packets(n)),
            Ok(_) => Ok(Status::Timeout),
            Err(e) => Err(CaptureError::Read {
                source_name: self.interface.clone(),
                message: e.to_string(),
            }),
        }
    }

    fn drops(&mut self) -> DropTotals {
        if let Ok(s) = self.cap.stats() {
            self.received.update(s.received);
            self.kernel.update(s.dropped);
            self.interface_drops.update(s.if_dropped);
        }
        DropTotals {
            received: self.received.total(),
            kernel: self.kernel.total(),
            interface: self.interface_drops.total(),
        }
    }
}
