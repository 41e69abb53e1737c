//! `crossline-agent`: command-line entry point. Glue only; the logic lives in the library.
#![forbid(unsafe_code)]

/// mimalloc (its v2 line) instead of glibc's allocator. The workers build alert events and
/// batches that other threads free; glibc spent 7-8 % of the one-worker time in malloc and free,
/// and more with two workers (its arenas are shared between threads). On the benchmark capture
/// this made one worker 7-10 % and two workers 25 % faster (bench/README.md). mimalloc's v3 line
/// gave memory back to the kernel and faulted it in again so often that short runs took twice
/// as long. mimalloc does not advise its own memory for transparent huge pages (`no_thp`): with
/// that advice peak RSS grew by a third and a run could stall in the kernel's page compaction.
/// (The feature does not turn huge pages off for the process: memory advised elsewhere gets them.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use crossline_agent::detect::{Classifier, DetectShared};
use crossline_agent::pipeline::{self, OfflineOptions, PipelineError};
use crossline_agent::session::{Session, OFFLINE_ACK_TIMEOUT};
use crossline_agent::sink::{EventSink, JsonLinesSink};
use crossline_agent::stats::LiveStats;
use crossline_config::exit;
use crossline_config::time::Date;
use crossline_config::AgentConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "crossline-agent",
    version,
    about = "crossline capture agent",
    after_long_help = exit::EXIT_STATUS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: crossline_config::logging::LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse capture files offline and write JSON events (stdout by default).
    Analyze(AnalyzeArgs),
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

/// `analyze` options.
#[derive(Debug, clap::Args)]
struct AnalyzeArgs {
    /// Agent configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Write events to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Number of shard workers (default: `[capture] workers`).
    #[arg(long)]
    workers: Option<usize>,
    /// pcap / pcapng files, read in order (`-` is standard input).
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
    /// Restore the detector's cumulative state (persons per year, caps per day, surge
    /// baselines, expiry warnings) from DIR before, and write it there after, the run.
    #[arg(long = "state")]
    state: Option<PathBuf>,
    /// With an uplink: how long to wait after the capture (and --linger) for the collector to
    /// acknowledge the spool (default `[uplink] drain_timeout`, 60s). Exit status 3 when
    /// events stay spooled or the collector refused any.
    #[arg(long, value_parser = crossline_config::parse_duration)]
    drain_timeout: Option<std::time::Duration>,
    /// Capture-file reader: native (default: the built-in pcap/pcapng reader, reading with
    /// read()), mmap (the same reader over a memory map of each regular file, 8 MiB at a time,
    /// no copy; pipes and FIFOs are read with read(); measured no faster than native, and a file
    /// that another process truncates while it is read ends the agent with SIGBUS) or libpcap
    /// (the slowest). All three give the same packets and errors. libpcap is used whenever
    /// `capture.filter` is set.
    #[arg(long, default_value = "native")]
    reader: crossline_agent::capture::file::OfflineReader,
}

/// Load the config or print every problem and return exit status 78.
fn load_config(path: &Path, today: Date) -> Result<AgentConfig, ExitCode> {
    match crossline_config::load_agent_config(path, today) {
        Ok((cfg, warnings)) => {
            for w in &warnings {
                tracing::warn!("{w}");
            }
            Ok(cfg)
        }
        Err(e) => {
            tracing::error!("Invalid configuration:\n{e}");
            Err(ExitCode::from(exit::CONFIG))
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
    tracing::error!("{e:#}");
    ExitCode::from(exit::RUNTIME)
}

/// Log a runtime failure; exit status 1.
fn failed(e: impl std::fmt::Display) -> ExitCode {
    tracing::error!("{e:#}");
    ExitCode::from(exit::RUNTIME)
}

/// Write the detector's state to `dir` (when given) and send one `sketch` event per enterprise
/// through the uplink (when configured). Problems are warnings: the run's result stands.
fn persist(shared: &DetectShared, dir: Option<&Path>, session: &Session) {
    if let Some(dir) = dir {
        match shared.save_state(dir) {
            Ok(n) => eprintln!(
                "crossline-agent: state: wrote {} ({n} bytes)",
                dir.join(crossline_agent::detect::state::STATE_FILE)
                    .display()
            ),
            Err(e) => eprintln!("crossline-agent: warning: {e}"),
        }
    }
    let mut sinks = session.sinks();
    send_sketches(shared, &mut sinks);
    for s in &mut sinks {
        if let Err(e) = s.finish() {
            eprintln!("crossline-agent: warning: sketches not spooled: {e}");
        }
    }
}

/// One `sketch` event per enterprise into `sinks` (the uplink's spool).
fn send_sketches(shared: &DetectShared, sinks: &mut [Box<dyn EventSink>]) {
    if sinks.is_empty() {
        return;
    }
    let ts = crossline_config::event::format_eve_timestamp(wall_micros());
    for event in shared.sketches(&ts) {
        let Ok(line) = serde_json::to_vec(&event) else {
            continue;
        };
        for s in sinks.iter_mut() {
            if let Err(e) = s.write(&event, &line) {
                eprintln!("crossline-agent: warning: sketch not spooled: {e}");
            }
        }
    }
}

fn wall_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// `run`: write the state and send sketches every `state_interval` until shutdown.
struct StateSaver {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl StateSaver {
    fn start(
        shared: Arc<DetectShared>,
        dir: PathBuf,
        interval: std::time::Duration,
        session: &Session,
        shutdown: Arc<AtomicBool>,
    ) -> StateSaver {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let mut sinks = session.sinks();
        let handle = std::thread::Builder::new()
            .name("state".into())
            .spawn(move || {
                let mut next = std::time::Instant::now() + interval;
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if stop2.load(Ordering::Relaxed) || shutdown.load(Ordering::Relaxed) {
                        return;
                    }
                    if std::time::Instant::now() < next {
                        continue;
                    }
                    next += interval;
                    if let Err(e) = shared.save_state(&dir) {
                        eprintln!("crossline-agent: warning: {e}");
                    }
                    send_sketches(&shared, &mut sinks);
                    for s in &mut sinks {
                        if let Err(e) = s.flush() {
                            eprintln!("crossline-agent: warning: sketches not spooled: {e}");
                        }
                    }
                }
            })
            .map_err(|e| eprintln!("crossline-agent: warning: state writer not started: {e}"))
            .ok();
        StateSaver { stop, handle }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return ExitCode::from(exit::command_line_error(&e)),
    };
    cli.log.init();
    // The clock and the environment are read here, once, and passed in.
    let today = crossline_config::today_beijing();
    let threads = std::env::var("CROSSLINE_CONFIG_THREADS").ok();
    if let Some(n) = exit::config_threads(threads.as_deref()) {
        crossline_config::load::set_parse_threads(n);
    }
    match cli.command {
        Command::Generate { what, dir } => {
            let code = crossline_config::cli_docs::generate_command(Cli::command(), what, &dir);
            ExitCode::from(u8::try_from(code).unwrap_or(exit::RUNTIME))
        }
        Command::Check { config } => check(&config, today),
        Command::Analyze(args) => match load_config(&args.config, today) {
            Ok(cfg) => analyze(&cfg, args),
            Err(code) => code,
        },
        Command::Run { config, out } => run(&config, out.as_deref(), today),
    }
}

/// `check`: the config and registry (every error of both files), then what `run` will use on
/// this machine (preflight).
fn check(config: &Path, today: Date) -> ExitCode {
    let code = crossline_config::check_command(config, today);
    if code != 0 {
        return ExitCode::from(u8::try_from(code).unwrap_or(exit::CONFIG));
    }
    let Ok((cfg, _)) = crossline_config::load_agent_config(config, today) else {
        return ExitCode::from(exit::CONFIG);
    };
    let p = crossline_agent::preflight::check(&cfg);
    if p.errors == 0 {
        print!("{}", p.render());
        ExitCode::SUCCESS
    } else {
        eprint!("{}", p.render());
        ExitCode::from(exit::CONFIG)
    }
}

/// The sinks of `analyze`: the uplink's spool first (an event is in the spool before it is in
/// the output), then the output, then the report.
fn analyze_sinks(
    cfg: &AgentConfig,
    args: &AnalyzeArgs,
    session: &Session,
) -> Result<Vec<Box<dyn EventSink>>, ExitCode> {
    let mut sinks = session.sinks();
    sinks.push(output_sink(args.out.as_deref()).map_err(failed)?);
    if let Some(path) = &args.report_path {
        let registry = Arc::new(cfg.registry.clone());
        let r = crossline_agent::report::ReportSink::create(path, registry, args.report_lang)
            .map_err(failed)?;
        sinks.push(Box::new(r.with_clock(wall_micros)));
    }
    Ok(sinks)
}

fn analyze(cfg: &AgentConfig, args: AnalyzeArgs) -> ExitCode {
    crossline_agent::capture::file::set_offline_reader(args.reader);
    let session = match Session::start(cfg, args.metrics_listen) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let sinks = match analyze_sinks(cfg, &args, &session) {
        Ok(s) => s,
        Err(code) => return code,
    };
    // Alerts are shaped once, at the writer, in capture-time order (the same events whatever
    // the number of workers): the classifiers do not fold.
    let fold = cfg.detect.fold_interval;
    let mut unfolded = cfg.clone();
    unfolded.detect.fold_interval = std::time::Duration::ZERO;
    let shared = match DetectShared::new(&unfolded) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    session.telemetry().set_detect(Arc::clone(&shared));
    session.telemetry().set_gateway(&cfg.gateway);
    if let Some(dir) = &args.state {
        shared.restore_state(dir);
    }
    // Packet and flow counters are live on /metrics while the capture is read.
    let stats = Arc::new(LiveStats::new());
    session.telemetry().set_live(Arc::clone(&stats));
    let detect = Arc::clone(&shared);
    let factory = move |i| Classifier::new(Arc::clone(&shared), i);
    let options = OfflineOptions {
        workers: args.workers,
        progress: true,
    };
    let summary = match pipeline::run_offline_shaped(
        cfg,
        &args.pcaps,
        sinks,
        &options,
        stats,
        Some(fold),
        factory,
    ) {
        Ok(s) => s,
        Err(e) => return report(&e),
    };
    warn_about_input(&summary.stats);
    persist(&detect, args.state.as_deref(), &session);
    let drain = args
        .drain_timeout
        .or(cfg.uplink.as_ref().map(|u| u.drain_timeout))
        .unwrap_or(OFFLINE_ACK_TIMEOUT);
    if let Err(e) = session.finish_offline(summary.live.clone(), args.linger, drain) {
        tracing::error!("{e}");
        return ExitCode::from(exit::UPLINK_INCOMPLETE);
    }
    ExitCode::SUCCESS
}

/// Warnings about the capture files: read errors, estimated capture loss, bad timestamps.
fn warn_about_input(stats: &crossline_config::event::Stats) {
    for e in &stats.file_errors {
        tracing::warn!("{e}");
    }
    let d = &stats.drops;
    if let (Some(&gaps), Some(&acks)) = (d.get("capture_loss_gaps"), d.get("capture_loss_acks")) {
        if gaps > 0 {
            tracing::warn!(
                "estimated capture loss: {gaps} of {acks} TCP acknowledgements ({:.2}%) covered segments the capture never saw ({} bytes)",
                gaps as f64 * 100.0 / acks.max(1) as f64,
                d.get("capture_loss_bytes").copied().unwrap_or(0)
            );
        }
    }
    if let Some(n) = stats.decode_errors.get("bad_timestamp") {
        tracing::warn!("{n} packet(s) with a capture time outside 1970-01-01..2100-01-01 dropped (stats: decode_errors.bad_timestamp)");
    }
}

fn run(config: &Path, out: Option<&Path>, today: Date) -> ExitCode {
    // From here on a SIGHUP no longer ends the process; once the reload watcher is up it
    // re-reads the configuration (one arriving before that is ignored: the config is being
    // read anyway).
    let early_hup = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, early_hup) {
        tracing::warn!("cannot catch SIGHUP before the reload watcher starts: {e}");
    }
    let cfg = match load_config(config, today) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Least privilege before any thread starts or file is created (agent/src/privilege.rs).
    match crossline_agent::privilege::drop_privileges(
        cfg.capture.user.as_deref(),
        &cfg.capture.interfaces,
    ) {
        Ok(o) => tracing::info!("{}", crossline_agent::privilege::describe(&o)),
        Err(e) => return failed(e),
    }
    let sink = match output_sink(out) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, shutdown.clone()) {
            return failed(format!("cannot install signal handler: {e}"));
        }
    }
    let session = match Session::start(&cfg, cfg.metrics.listen) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let stats = Arc::new(LiveStats::new());
    session.telemetry().set_live(stats.clone());
    // The spool first: an event is in the spool before it is in the output.
    let mut sinks = session.sinks();
    sinks.push(sink);
    let shared = match DetectShared::new(&cfg) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    session.telemetry().set_detect(Arc::clone(&shared));
    session.telemetry().set_gateway(&cfg.gateway);
    shared.restore_state(&cfg.state_dir);
    let saver = StateSaver::start(
        Arc::clone(&shared),
        cfg.state_dir.clone(),
        cfg.state_interval,
        &session,
        Arc::clone(&shutdown),
    );
    let detect = Arc::clone(&shared);
    // Hot reload: SIGHUP re-reads agent.toml and the registry; a change of the registry file
    // (polled every second) reloads the registry.
    let reloader = crossline_agent::detect::reload::ConfigReloader::new(
        cfg.clone(),
        Arc::clone(&shared),
        session.uplink().map(|u| Box::new(u) as _),
    );
    let _watchers = match shared.watch(reloader) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("registry reload triggers not started: {e}");
            None
        }
    };
    let factory = move |i| Classifier::new(Arc::clone(&shared), i);
    let result = pipeline::run_live(&cfg, sinks, stats, shutdown, factory);
    saver.stop();
    persist(&detect, Some(&cfg.state_dir), &session);
    session.finish_live();
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}
