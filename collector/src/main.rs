//! `crossline-collector`: command line glue around the library.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use crossline_collector::{pki, server, util};
use crossline_config::collector::{load_collector, CollectorConfig};
use crossline_config::exit;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "crossline-collector",
    version,
    about = "crossline collector: mTLS ingest, store, incidents, notifications, metrics, API",
    after_long_help = exit::EXIT_STATUS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: crossline_config::logging::LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector.
    Run {
        /// Collector config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a config file and print a summary (exit 78 with every error when invalid).
    Check {
        /// Collector config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Certificates: a private CA, the server certificate, gateway client certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Copy an SQLite store into an empty PostgreSQL store (ids kept; stop the collector
    /// first). The password comes from PGPASSWORD or --password-file.
    MigrateStore {
        /// SQLite database file.
        #[arg(long)]
        from: PathBuf,
        /// postgresql://user@host:port/dbname (no password in it).
        #[arg(long)]
        to: String,
        /// File holding the database password.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Write man pages or shell completions into DIR (packaging).
    #[command(hide = true)]
    Generate {
        what: crossline_config::cli_docs::Generated,
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create DIR/ca.pem, ca.key, server.pem, server.key.
    Init {
        /// Output folder.
        dir: PathBuf,
        /// Extra server name or IP address (repeatable); localhost, 127.0.0.1 and ::1 are always in.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Validity of the server certificate in days (the CA gets at least 3650).
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue DIR/ID.pem and DIR/ID.key for a gateway (certificate CN = gateway id).
    Issue {
        /// Folder holding ca.pem and ca.key.
        dir: PathBuf,
        /// Gateway id.
        #[arg(long)]
        gateway: String,
        /// Validity in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print the SHA-256 hex of a token read from stdin (for `sha256 = "..."`).
    Hash,
    /// Print a new random token and the config snippet for it.
    New {
        /// regulator, operator or enterprise.
        #[arg(long)]
        role: String,
        /// Enterprise id (role enterprise).
        #[arg(long)]
        enterprise: Option<String>,
        /// Gateway id (role operator; repeatable).
        #[arg(long = "gateway")]
        gateways: Vec<String>,
        /// Name written to the audit log.
        #[arg(long)]
        name: Option<String>,
    },
}

/// A command-line mistake found after parsing (a value clap cannot check): exit status 64.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return ExitCode::from(exit::command_line_error(&e)),
    };
    cli.log.init();
    // The environment is read here, once; the config library takes it as a setting.
    let threads = std::env::var("CROSSLINE_CONFIG_THREADS").ok();
    if let Some(n) = exit::config_threads(threads.as_deref()) {
        crossline_config::load::set_parse_threads(n);
    }
    match real_main(cli) {
        Ok(code) => code,
        Err(e) if e.is::<UsageError>() => {
            tracing::error!("{e:#}");
            ExitCode::from(exit::USAGE)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(exit::RUNTIME)
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Generate { what, dir } => {
            let code = crossline_config::cli_docs::generate_command(Cli::command(), what, &dir);
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(exit::RUNTIME)))
        }
        Command::MigrateStore {
            from,
            to,
            password_file,
        } => migrate_store(from, to, password_file),
        Command::Check { config } => Ok(check(&config)),
        Command::Run { config } => run(&config),
        Command::Pki(PkiCommand::Init {
            dir,
            sans,
            days,
            force,
        }) => {
            pki::init(&dir, &sans, days, force)?;
            println!(
                "wrote {0}/ca.pem, {0}/ca.key, {0}/server.pem, {0}/server.key",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki(PkiCommand::Issue {
            dir,
            gateway,
            days,
            force,
        }) => {
            pki::issue(&dir, &gateway, days, force)?;
            println!("wrote {0}/{1}.pem, {0}/{1}.key", dir.display(), gateway);
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCommand::Hash) => token_hash(),
        Command::Token(TokenCommand::New {
            role,
            enterprise,
            gateways,
            name,
        }) => token_new(&role, enterprise, gateways, name),
    }
}

fn migrate_store(
    from: PathBuf,
    to: String,
    password_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    crossline_config::collector::check_postgres_url(&to)
        .map_err(|e| usage(format!("--to: {e}")))?;
    anyhow::ensure!(from.is_file(), "{}: no such SQLite store", from.display());
    let db = crossline_config::collector::PostgresDb {
        url: to,
        password_file,
        password_env: "PGPASSWORD".into(),
    };
    let cfg = crossline_config::collector::parse_collector(
        "gateways = []\n",
        std::path::Path::new("migrate-store"),
    )?;
    let copied = crossline_collector::pg::copy_from_sqlite(&from, &db, Arc::new(cfg))
        .with_context(|| format!("copy {} to {}", from.display(), db.url))?;
    for (table, n) in copied {
        println!("{table}: {n} rows");
    }
    Ok(ExitCode::SUCCESS)
}

/// `check`: every problem of the config and the registry it names (exit 78), then what `run`
/// needs on this machine (the TLS files, limits the agents can live with); else a summary.
fn check(config: &Path) -> ExitCode {
    let c = match load_collector(config) {
        Ok(c) => c,
        Err(e) => {
            for d in &e.errors {
                eprintln!("{d}");
            }
            let n = e.errors.len();
            eprintln!(
                "{n} error{} in {} (and the registry it names); nothing was started",
                if n == 1 { "" } else { "s" },
                config.display()
            );
            return ExitCode::from(exit::CONFIG);
        }
    };
    let mut problems = Vec::new();
    for (what, p) in [
        ("tls.ca", &c.tls.ca),
        ("tls.cert", &c.tls.cert),
        ("tls.key", &c.tls.key),
    ] {
        if !p.exists() {
            problems.push(format!(
                "{}: {what} {} does not exist (create it with `crossline-collector pki init`)",
                config.display(),
                p.display()
            ));
        }
    }
    problems.extend(c.deployment_problems());
    if problems.is_empty() {
        if let Err(e) =
            crossline_collector::tls::ingest_server_config(&c.tls.ca, &c.tls.cert, &c.tls.key)
        {
            problems.push(format!("{}: {e}", config.display()));
        }
    }
    if !problems.is_empty() {
        for p in problems {
            eprintln!("{p}");
        }
        return ExitCode::from(exit::CONFIG);
    }
    print_summary(config, &c);
    ExitCode::SUCCESS
}

fn print_summary(config: &Path, c: &CollectorConfig) {
    println!("config {} is valid", config.display());
    println!(
        "  ingest    https://{} (client certificates from {})",
        c.listen,
        c.tls.ca.display()
    );
    println!(
        "  api       {}://{}",
        if c.api_tls.is_some() { "https" } else { "http" },
        c.api_listen
    );
    println!("  database  {}", c.database.display());
    println!("  gateways  {}", c.gateways.join(", "));
    match (&c.registry_path, &c.registry) {
        (Some(p), Some(r)) => println!(
            "  registry  {} ({} enterprises, {} scenarios)",
            p.display(),
            r.enterprises.len(),
            r.scenarios.len()
        ),
        _ => println!("  registry  none (label values capped at 1000 distinct)"),
    }
    println!(
        "  tokens    {}",
        c.tokens
            .iter()
            .map(|t| format!("{} ({})", t.name, t.role.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  receivers {}",
        c.receivers
            .iter()
            .map(|r| format!("{} ({})", r.name, r.kind.channel()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  routes    {}", c.routes.len());
}

fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("collector")
        .build()
        .context("starting the tokio runtime")?;
    // From here on a SIGHUP no longer ends the process: `server::run` reloads on it, and
    // one arriving while the config is read is ignored (that read is the newest anyway).
    let _early_hup = rt
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) });
    let c = match load_collector(config) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!("Invalid configuration:\n{e}");
            return Ok(ExitCode::from(exit::CONFIG));
        }
    };
    for p in c.deployment_problems() {
        tracing::warn!("{p}");
    }
    rt.block_on(async move {
        let stop = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!("cannot watch SIGTERM: {e}");
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    }
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        server::run(c, crossline_collector::util::Clock::system(), stop, |_| {}).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn token_hash() -> anyhow::Result<ExitCode> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading the token from stdin")?;
    let t = s.trim();
    if t.is_empty() {
        return Err(usage("no token on stdin, expected the token to hash"));
    }
    println!("{}", util::sha256_hex(t.as_bytes()));
    Ok(ExitCode::SUCCESS)
}

fn token_new(
    role: &str,
    enterprise: Option<String>,
    gateways: Vec<String>,
    name: Option<String>,
) -> anyhow::Result<ExitCode> {
    match role {
        "regulator" | "operator" | "enterprise" => {}
        other => {
            return Err(usage(format!(
                "--role: unknown role {other:?} (expected regulator, operator, enterprise)"
            )))
        }
    }
    if role == "enterprise" && enterprise.is_none() {
        return Err(usage("role enterprise needs --enterprise ID"));
    }
    if role == "operator" && gateways.is_empty() {
        return Err(usage("role operator needs at least one --gateway ID"));
    }
    let bytes: [u8; 32] = rand::random();
    let token = format!("xl_{}", util::hex(&bytes));
    let name = name.unwrap_or_else(|| format!("{role}-{}", &util::hex(&bytes[..3])));
    println!("token: {token}");
    println!();
    println!("[[token]]");
    println!("name = {name:?}");
    println!("role = {role:?}");
    println!("sha256 = {:?}", util::sha256_hex(token.as_bytes()));
    if let Some(e) = enterprise {
        println!("enterprise = {e:?}");
    }
    if !gateways.is_empty() {
        println!("gateways = {gateways:?}");
    }
    Ok(ExitCode::SUCCESS)
}
