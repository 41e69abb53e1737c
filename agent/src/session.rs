//! The glue `main.rs` uses: start the uplink (when `[uplink]` is configured) and `/metrics`
//! (when a listen address is given) around a pipeline run, and wind them down after it.

use crate::metrics::{MetricsError, MetricsServer, Telemetry};
use crate::sink::EventSink;
use crate::stats::LiveStats;
use crate::uplink::{Uplink, UplinkError};
use crossline_config::AgentConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long `analyze` waits for the collector to acknowledge the spool after the capture ends
/// (after any `--linger`).
pub const OFFLINE_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `run` waits at shutdown for the collector to acknowledge the spool.
pub const LIVE_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors starting a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The uplink could not start.
    #[error(transparent)]
    Uplink(#[from] UplinkError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Uplink + `/metrics` around one pipeline run.
#[derive(Debug)]
pub struct Session {
    uplink: Option<Uplink>,
    telemetry: Arc<Telemetry>,
    server: Option<MetricsServer>,
}

impl Session {
    /// Start the uplink if `cfg.uplink` is set and `/metrics` on `metrics_listen` if given.
    pub fn start(
        cfg: &AgentConfig,
        metrics_listen: Option<SocketAddr>,
    ) -> Result<Session, SessionError> {
        let uplink = cfg.uplink.as_ref().map(Uplink::start).transpose()?;
        let telemetry = Arc::new(Telemetry::new(uplink.as_ref().map(Uplink::handle)));
        let server = metrics_listen
            .map(|addr| telemetry.serve(addr))
            .transpose()?;
        if let Some(s) = &server {
            tracing::info!("metrics on http://{}/metrics", s.local_addr());
        }
        Ok(Session {
            uplink,
            telemetry,
            server,
        })
    }

    /// Extra sinks for the writer (the uplink's spool), to add next to the JSON-lines output.
    pub fn sinks(&self) -> Vec<Box<dyn EventSink>> {
        self.uplink
            .iter()
            .map(|u| Box::new(u.sink()) as Box<dyn EventSink>)
            .collect()
    }

    /// A handle on the uplink, if there is one.
    pub fn uplink(&self) -> Option<crate::uplink::UplinkHandle> {
        self.uplink.as_ref().map(Uplink::handle)
    }

    /// The telemetry behind `/metrics` (attach the live counters and registry to it).
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// After an offline run: keep `/metrics` up and the uplink draining for `linger`, then wait
    /// up to `drain_timeout` until the collector has acknowledged everything. An error when
    /// events stayed in the spool or when the collector refused batches or events for good.
    pub fn finish_offline(
        self,
        live: Arc<LiveStats>,
        linger: Option<Duration>,
        drain_timeout: Duration,
    ) -> Result<(), UplinkError> {
        self.telemetry.set_live(live);
        if let Some(l) = linger {
            std::thread::sleep(l);
        }
        let result = match self.uplink {
            Some(u) => finish_uplink(u, drain_timeout),
            None => Ok(()),
        };
        drop(self.server);
        result
    }

    /// After a live run: seal partial batches into the spool and give the collector up to
    /// [`LIVE_DRAIN_TIMEOUT`] to acknowledge them; what is left is sent by the next start.
    pub fn finish_live(self) {
        if let Some(u) = self.uplink {
            if let Err(e) = finish_uplink(u, LIVE_DRAIN_TIMEOUT) {
                tracing::error!("{e}");
            }
        }
        drop(self.server);
    }
}

/// Drain `u` for up to `timeout`, print the summary, and say what did not reach the collector.
fn finish_uplink(u: Uplink, timeout: Duration) -> Result<(), UplinkError> {
    let handle = u.handle();
    let dir = handle.spool_dir();
    let drained = u.finish(timeout);
    let snap = handle.snapshot();
    print_summary(&snap);
    drained?;
    if snap.rejected + snap.lines_rejected > 0 {
        return Err(UplinkError::Refused {
            batches: snap.rejected,
            lines: snap.lines_rejected,
            dir: dir.join("rejected"),
        });
    }
    Ok(())
}

fn print_summary(s: &crate::uplink::UplinkSnapshot) {
    use crate::uplink::spool::{BatchKind, DropReason};
    tracing::info!(
        "uplink: {} batches acknowledged ({} stored, {} duplicate; {} retries, \
         {} split); {} events left in the spool; {} not sent as invalid",
        s.acked + s.duplicate,
        s.acked,
        s.duplicate,
        s.retried,
        s.split,
        s.spool.unacked_events,
        s.invalid.iter().sum::<u64>()
    );
    if s.refused + s.rejected + s.lines_rejected > 0 {
        tracing::error!(
            "uplink: the collector refused {} attempts (kept and \
             retried), {} batches whole and {} events by line (set aside, not stored)",
            s.refused,
            s.rejected,
            s.lines_rejected
        );
    }
    let d = &s.spool.dropped;
    let line = |kind| {
        DropReason::ALL
            .iter()
            .map(|r| format!("{} {}", d.events(kind, *r), r.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if s.spool.dropped_flows + s.spool.dropped_alerts > 0 || s.spool.in_memory {
        tracing::warn!(
            "uplink spool{}: flow events dropped: {}; alert events dropped: {}",
            if s.spool.in_memory {
                " (in memory)"
            } else {
                ""
            },
            line(BatchKind::Flows),
            line(BatchKind::Alerts)
        );
    }
}
