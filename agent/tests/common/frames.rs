//! Generated frames handed to shard workers directly, as the dispatcher hands them: TCP headers,
//! decoded batches, and a worker's context over the example configuration.

use crossline_agent::decode::{decode, linktype, Decoded};
use crossline_agent::dns_cache::DnsCache;
use crossline_agent::pipeline::{Batch, PacketMeta, BATCH_PACKETS, IN_DATA};
use crossline_agent::stats::LiveStats;
use crossline_agent::worker::WorkerContext;
use crossline_config::AgentConfig;
use crossline_testgen::L4;
use std::sync::Arc;

/// `examples/agent.toml`, loaded as of today (Beijing).
pub fn example_config() -> AgentConfig {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/agent.toml"
    ));
    let (cfg, _) = crossline_config::load_agent_config(path, crossline_config::today_beijing())
        .expect("examples/agent.toml is valid");
    cfg
}

/// A TCP header without FIN: a SYN (`syn`), or a segment with PSH.
pub fn tcp(seq: u32, ack: Option<u32>, syn: bool) -> L4 {
    L4::Tcp {
        seq,
        ack,
        syn,
        fin: false,
        psh: !syn,
    }
}

/// Decode Ethernet `frames` (packet number, capture time, bytes) into batches of at most
/// [`BATCH_PACKETS`] the way the dispatcher does, payloads copied into the batch.
pub fn batches<'a>(frames: impl IntoIterator<Item = (u64, i64, &'a [u8])>) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut b = Batch::default();
    for (seq, ts, f) in frames {
        let mut dec = Decoded::default();
        decode(linktype::ETHERNET, f, &mut dec).expect("frame decodes");
        let start = dec.payload_off as usize;
        let payload = &f[start..start + dec.payload_len as usize];
        let payload_start = b.data.len() as u32;
        b.data.extend_from_slice(payload);
        b.metas.push(PacketMeta {
            ts_micros: ts,
            orig_len: f.len() as u32,
            payload_start,
            chunk: IN_DATA,
            dec,
            seq,
            dns_response: false,
        });
        b.now = ts;
        if b.metas.len() == BATCH_PACKETS {
            out.push(std::mem::take(&mut b));
        }
    }
    if !b.metas.is_empty() {
        out.push(b);
    }
    out
}

/// The context of one of `workers` workers over `cfg`: flow records as owned events, or
/// straight into JSON lines (`direct`); alert lines written by the worker.
pub fn worker_context(
    cfg: &AgentConfig,
    workers: usize,
    stats: Arc<LiveStats>,
    dns: Arc<DnsCache>,
    direct: bool,
) -> WorkerContext {
    WorkerContext {
        gateway: cfg.gateway.clone(),
        capture: cfg.capture.clone(),
        workers,
        stats,
        dns,
        direct,
        spare_lines: None,
        alert_lines_at_writer: false,
    }
}
