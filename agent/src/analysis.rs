//! The boundary between the data plane (capture, decode, flows, L7 taps) and the analysis
//! (classification against the registry, detectors, personal-information scanning).
//!
//! Each shard worker owns one [`Analysis`] value and one flow table. The worker calls
//! [`Analysis::on_payload`] for packets that carry transport payload, [`Analysis::on_flow_record`]
//! whenever it writes a flow record (close, timeout, eviction, active timeout, end of capture)
//! and [`Analysis::on_tick`] about once per second of packet time. Nothing here is shared between
//! workers except what the analysis itself puts behind an `Arc` (the compiled registry, the
//! persons counters).

pub mod findings;

use findings::{Findings, NameRef};
use std::net::IpAddr;

/// Why a flow record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    Fin,
    Rst,
    Timeout,
    /// A running record of a long flow; the flow stays in the table.
    ActiveTimeout,
    /// Evicted because the table was full.
    Evicted,
    /// End of capture (offline) or shutdown (live).
    Shutdown,
}

impl EndReason {
    /// The `flow.reason` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::Timeout => "timeout",
            EndReason::ActiveTimeout => "active_timeout",
            EndReason::Evicted => "evicted",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// What the data plane knows about a flow when it writes a record. `fwd` is initiator ->
/// responder. Counters are totals since the flow started (also for active-timeout records).
#[derive(Debug, Clone, Copy)]
pub struct FlowSummary<'a> {
    pub flow_id: u64,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 50 ESP, ...).
    pub ip_proto: u8,
    pub initiator: IpAddr,
    pub initiator_port: u16,
    pub responder: IpAddr,
    pub responder_port: u16,
    /// VLAN ids of the flow's key (outermost first, 0 = none).
    pub vlan: [u16; 3],
    /// ICMP / ICMPv6: (type, code) of the initiator's first message; (0, 0) otherwise.
    pub icmp: (u8, u8),
    pub pkts_fwd: u64,
    pub pkts_rev: u64,
    /// Whole frames as captured on the wire (pcap original length), the byte rule of docs/events.md.
    pub bytes_fwd: u64,
    pub bytes_rev: u64,
    /// Transport payload bytes (for entropy / tunnel heuristics).
    pub payload_fwd: u64,
    pub payload_rev: u64,
    /// Unix microseconds of the first and last packet.
    pub first_micros: i64,
    pub last_micros: i64,
    pub reason: EndReason,
    /// Picked up without seeing a SYN.
    pub midstream: bool,
    /// `tls`, `quic`, `http`, `dns`, `ssh`, `smtp`, `ftp`, `wireguard`, `openvpn`, `ipsec`, ...
    pub app_proto: Option<&'static str>,
    /// SNI from a TLS ClientHello over TCP.
    pub tls_sni: Option<&'a str>,
    /// SNI from a decrypted QUIC Initial.
    pub quic_sni: Option<&'a str>,
    /// The ClientHello (TLS or QUIC) offered ECH: the SNI above is an outer/cover name.
    pub ech: bool,
    /// HTTP/1.x Host header (lower case, port stripped).
    pub http_host: Option<&'a str>,
    /// A name that DNS answers seen on the line resolved to the responder address.
    pub dns_name: Option<&'a str>,
}

/// Per-packet view handed to [`Analysis::on_payload`].
#[derive(Debug, Clone, Copy)]
pub struct PayloadView<'a> {
    pub initiator: IpAddr,
    pub responder: IpAddr,
    pub ip_proto: u8,
    pub responder_port: u16,
    /// VLAN ids of the flow's key (outermost first, 0 = none).
    pub vlan: [u16; 3],
    /// The packet was sent by the initiator.
    pub from_initiator: bool,
    /// The flow's L7 is known to be encrypted (TLS, QUIC, SSH, ...); scanners may skip it.
    pub encrypted: bool,
    pub payload: &'a [u8],
    pub now_micros: i64,
}

/// Analysis plugged into a shard worker. Implemented by the classifier/detector; the data plane
/// has a no-op implementation for pure flow metering.
pub trait Analysis: Send {
    /// Per-flow state kept inside the flow table entry. Keep it small (the whole flow entry
    /// budget is 256 bytes); put rare large state behind an `Option<Box<_>>`.
    type FlowState: Default + Send;

    /// Called for every packet with a non-empty transport payload. Must not allocate.
    fn on_payload(&mut self, state: &mut Self::FlowState, view: &PayloadView<'_>);

    /// Called when a flow record is written: judge the flow from its facts and the per-flow
    /// state and put the verdict and the alerts raised into `out` (cleared by the caller; the
    /// worker writes the events from it). For `ActiveTimeout` records the counters are
    /// running totals.
    fn on_flow_record(
        &mut self,
        state: &mut Self::FlowState,
        summary: &FlowSummary<'_>,
        out: &mut Findings,
    );

    /// Live only, after [`Analysis::on_payload`]: what the flow's early verdict waits for, read
    /// from the per-flow state (a few bit tests; called per packet with payload). `bytes` are
    /// the flow's frame bytes so far, initiator -> responder and back.
    fn early_verdict(&self, _state: &Self::FlowState, _bytes: [u64; 2]) -> EarlyVerdict {
        EarlyVerdict::None
    }

    /// Live only: judge the flow before its record, when [`Analysis::early_verdict`] said so
    /// and what it waits for is there (once at the first export, once more when a name
    /// arrives). Put the verdict alert raised, if any, into `out.alerts` (`out.verdict` is not
    /// written: the flow record carries the verdict). Counters are totals so far.
    fn on_early_verdict(
        &mut self,
        _state: &mut Self::FlowState,
        _summary: &FlowSummary<'_>,
        _out: &mut Findings,
    ) {
    }

    /// Called about once per second of packet time (offline) or wall time (live), and once at
    /// the end with the final stats. Detectors that work on time (surges, expiry warnings,
    /// sensor gaps) put their alerts into `out.alerts`.
    fn on_tick(&mut self, now_micros: i64, health: &Health, out: &mut Findings);

    /// The id or name a finding refers to by index, as of the last call of
    /// [`Analysis::on_flow_record`] or [`Analysis::on_tick`].
    fn name_of(&self, name: NameRef) -> Option<&str>;

    /// Offline with several workers: while `on`, keep what [`Analysis::on_payload`] adds to
    /// state shared by the workers (person counts) in [`SharedEffects`] instead of adding it,
    /// so worker 0 can add every worker's at the next tick, before it judges that tick's
    /// records: the shared state a record or tick reads is then that of the packets before
    /// the tick, while the other workers already read on.
    fn buffer_shared_effects(&mut self, _on: bool) {}

    /// Move the effects kept since the last call into `into` (see
    /// [`Analysis::buffer_shared_effects`]).
    fn take_shared_effects(&mut self, _into: &mut SharedEffects) {}

    /// Add effects another worker kept (emptying `effects`).
    fn apply_shared_effects(&mut self, _effects: &mut SharedEffects) {}
}

/// What a worker's [`Analysis::on_payload`] would have added to shared state, kept for worker
/// 0 (see [`Analysis::buffer_shared_effects`]).
#[derive(Debug, Default)]
pub struct SharedEffects {
    /// Persons seen: (owner enterprise index, or none and the domestic address; year; person
    /// hash; sensitive).
    pub persons: Vec<PersonSeen>,
}

/// One person identifier seen in a payload (see [`SharedEffects`]).
#[derive(Debug, Clone, Copy)]
pub struct PersonSeen {
    /// Index of the owning enterprise in the registry, if one owns the source.
    pub owner: Option<u32>,
    /// The domestic endpoint (the owner when no enterprise does).
    pub domestic: IpAddr,
    /// Calendar year (Beijing) of the packet.
    pub year: i32,
    /// Keyed hash of the identifier.
    pub hash: u64,
    /// Sensitive personal information.
    pub sensitive: bool,
}

/// What a flow's early verdict waits for (see [`Analysis::early_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyVerdict {
    /// Nothing to judge before the flow record.
    None,
    /// The first export payload was seen: judge once the name in the first payload, if one is
    /// being parsed (a ClientHello or request head split over segments), is known.
    FirstExport,
    /// Judged without a name: judge again once the L7 taps find one.
    OnName,
}

/// Data-plane health figures passed to [`Analysis::on_tick`], totals since start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Health {
    pub packets: u64,
    pub drops_kernel: u64,
    pub drops_interface: u64,
    pub drops_queue: u64,
    pub evictions: u64,
    pub flows_active: u64,
    pub flow_capacity: u64,
    /// Acknowledged segments the capture never saw (capture-loss gaps), counted only for
    /// intervals whose estimated loss ratio passed `capture.loss_alert_ratio`.
    pub capture_loss: u64,
}

/// Analysis that does nothing: flow metering only.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAnalysis;

impl Analysis for NoAnalysis {
    type FlowState = ();

    fn on_payload(&mut self, _state: &mut (), _view: &PayloadView<'_>) {}

    fn on_flow_record(&mut self, _state: &mut (), _summary: &FlowSummary<'_>, _out: &mut Findings) {
    }

    fn on_tick(&mut self, _now_micros: i64, _health: &Health, _out: &mut Findings) {}

    fn name_of(&self, _name: NameRef) -> Option<&str> {
        None
    }
}
