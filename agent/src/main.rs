//! `crossline-agent`: command-line entry point. Glue only; the logic lives in the library.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use crossline_agent::detect::{Classifier, DetectShared};
use crossline_agent::pipeline::{self, OfflineOptions, PipelineError};
use crossline_agent::sink::{EventSink, JsonLinesSink};
use crossline_agent::stats::LiveStats;
use crossline_agent::uplink::session::{Session, OFFLINE_ACK_TIMEOUT};
use crossline_config::AgentConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "crossline-agent", version, about = "crossline capture agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse capture files offline and write JSON events (stdout by default).
    Analyze {
        /// Agent configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Write events to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Number of shard workers (default: `[capture] workers`).
        #[arg(long)]
        workers: Option<usize>,
        /// pcap / pcapng files, read in order.
        #[arg(required = true)]
        pcaps: Vec<PathBuf>,
        /// Serve /metrics on this address while the run lasts (and during --linger).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
        /// After the capture ends, keep /metrics up and the uplink draining this long (e.g. 30s).
        #[arg(long, value_parser = crossline_config::parse_duration)]
        linger: Option<std::time::Duration>,
        /// Also write a self-contained HTML self-check report to this file.
        #[arg(long = "report")]
        report_path: Option<PathBuf>,
        /// Language of the report: zh (default) or en.
        #[arg(long = "lang", default_value = "zh")]
        report_lang: crossline_agent::report::Lang,
    },
    /// Capture live on the configured interfaces until SIGTERM / SIGINT.
    Run {
        /// Agent configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Write events to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Validate the configuration and registry and print a summary.
    Check {
        /// Agent configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Write man pages or shell completions into DIR (packaging).
    #[command(hide = true)]
    Generate {
        what: crossline_config::cli_docs::Generated,
        dir: PathBuf,
    },
}

/// Load the config or print every problem and exit 2.
fn load_config(path: &Path) -> Result<AgentConfig, ExitCode> {
    match crossline_config::load_agent_config(path, crossline_config::today_beijing()) {
        Ok((cfg, warnings)) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            Ok(cfg)
        }
        Err(e) => {
            eprintln!("Invalid configuration:\n{e}");
            Err(ExitCode::from(2))
        }
    }
}

fn output_sink(out: Option<&Path>) -> anyhow::Result<Box<dyn EventSink>> {
    Ok(match out {
        Some(p) => Box::new(
            JsonLinesSink::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(JsonLinesSink::stdout()),
    })
}

fn report(e: &PipelineError) -> ExitCode {
    eprintln!("crossline-agent: {e:#}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate { what, dir } => {
            let code = crossline_config::cli_docs::generate_command(Cli::command(), what, &dir);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Check { config } => {
            let code = crossline_config::check_command(&config, crossline_config::today_beijing());
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Analyze {
            config,
            out,
            workers,
            pcaps,
            metrics_listen,
            linger,
            report_path,
            report_lang,
        } => {
            let cfg = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let sink = match output_sink(out.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("crossline-agent: {e:#}");
                    return ExitCode::from(1);
                }
            };
            let options = OfflineOptions {
                workers,
                progress: true,
            };
            let session = match Session::start(&cfg, metrics_listen) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("crossline-agent: {e}");
                    return ExitCode::from(1);
                }
            };
            // The spool first: an event is in the spool before it is in the output.
            let mut sinks = session.sinks();
            sinks.push(sink);
            if let Some(path) = report_path {
                let registry = Arc::new(cfg.registry.clone());
                match crossline_agent::report::ReportSink::create(path, registry, report_lang) {
                    Ok(r) => sinks.push(Box::new(r)),
                    Err(e) => {
                        eprintln!("crossline-agent: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
            // Alerts are shaped once, at the writer, in capture-time order (the same events
            // whatever the number of workers): the classifiers do not fold.
            let fold = cfg.detect.fold_interval;
            let mut unfolded = cfg.clone();
            unfolded.detect.fold_interval = std::time::Duration::ZERO;
            let shared = match DetectShared::new(&unfolded) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("crossline-agent: {e}");
                    return ExitCode::from(1);
                }
            };
            session.telemetry().set_detect(Arc::clone(&shared));
            session.telemetry().set_gateway(&cfg.gateway);
            // Packet and flow counters are live on /metrics while the capture is read.
            let stats = Arc::new(LiveStats::new());
            session.telemetry().set_live(Arc::clone(&stats));
            let factory = move |i| Classifier::new(Arc::clone(&shared), i);
            match pipeline::run_offline_shaped(
                &cfg,
                &pcaps,
                sinks,
                &options,
                stats,
                Some(fold),
                factory,
            ) {
                Ok(summary) => {
                    for e in &summary.stats.file_errors {
                        eprintln!("crossline-agent: warning: {e}");
                    }
                    let d = &summary.stats.drops;
                    if let (Some(&gaps), Some(&acks)) =
                        (d.get("capture_loss_gaps"), d.get("capture_loss_acks"))
                    {
                        if gaps > 0 {
                            eprintln!(
                                "crossline-agent: estimated capture loss: {gaps} of {acks} TCP acknowledgements ({:.2}%) covered segments the capture never saw ({} bytes)",
                                gaps as f64 * 100.0 / acks.max(1) as f64,
                                d.get("capture_loss_bytes").copied().unwrap_or(0)
                            );
                        }
                    }
                    if let Some(n) = summary.stats.decode_errors.get("bad_timestamp") {
                        eprintln!("crossline-agent: warning: {n} packet(s) with a capture time outside 1970-01-01..2100-01-01 dropped (stats: decode_errors.bad_timestamp)");
                    }
                    let live = summary.live.clone();
                    if let Err(e) = session.finish_offline(live, linger, OFFLINE_ACK_TIMEOUT) {
                        eprintln!("crossline-agent: {e}");
                        return ExitCode::from(1);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => report(&e),
            }
        }
        Command::Run { config, out } => {
            let cfg = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            // Least privilege before any thread starts or file is created (agent/src/privilege.rs).
            match crossline_agent::privilege::drop_privileges(
                cfg.capture.user.as_deref(),
                &cfg.capture.interfaces,
            ) {
                Ok(o) => eprintln!(
                    "crossline-agent: {}",
                    crossline_agent::privilege::describe(&o)
                ),
                Err(e) => {
                    eprintln!("crossline-agent: {e}");
                    return ExitCode::from(1);
                }
            }
            let sink = match output_sink(out.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("crossline-agent: {e:#}");
                    return ExitCode::from(1);
                }
            };
            let shutdown = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                if let Err(e) = signal_hook::flag::register(sig, shutdown.clone()) {
                    eprintln!("crossline-agent: cannot install signal handler: {e}");
                    return ExitCode::from(1);
                }
            }
            let stats = Arc::new(LiveStats::new());
            let session = match Session::start(&cfg, cfg.metrics.listen) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("crossline-agent: {e}");
                    return ExitCode::from(1);
                }
            };
            session.telemetry().set_live(stats.clone());
            // The spool first: an event is in the spool before it is in the output.
            let mut sinks = session.sinks();
            sinks.push(sink);
            let shared = match DetectShared::new(&cfg) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("crossline-agent: {e}");
                    return ExitCode::from(1);
                }
            };
            session.telemetry().set_detect(Arc::clone(&shared));
            session.telemetry().set_gateway(&cfg.gateway);
            // Registry hot reload: SIGHUP and a change of the file (polled every second).
            let _watchers = match shared.watch_registry() {
                Ok(w) => Some(w),
                Err(e) => {
                    eprintln!(
                        "crossline-agent: warning: registry reload triggers not started: {e}"
                    );
                    None
                }
            };
            let factory = move |i| Classifier::new(Arc::clone(&shared), i);
            let result = pipeline::run_live(&cfg, sinks, stats, shutdown, factory);
            session.finish_live();
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => report(&e),
            }
        }
    }
}
