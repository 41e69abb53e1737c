//! A real PostgreSQL 15 for tests: `initdb` + `pg_ctl` in a temporary directory, as an
//! unprivileged user (PostgreSQL refuses to run as root: as root the helper creates the system
//! user `crossline-test` once and runs the server as it), on a free loopback port, with a
//! password (SCRAM) for TCP connections. Stopped and removed on drop.
//!
//! Without the binaries (`/usr/lib/postgresql/15/bin`, from Debian's `postgresql-15`;
//! `scripts/ensure-deps.sh` installs it) [`Postgres::start`] returns `None` and says so on
//! stderr; under `CI=true` it panics instead.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Where Debian puts the server binaries (`PG_BIN` overrides).
pub fn pg_bin() -> PathBuf {
    std::env::var_os("PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

const USER: &str = "crossline-test";
/// Database role and its password.
pub const ROLE: &str = "crossline";
pub const PASSWORD: &str = "test-password-not-secret";

/// A running PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    /// (uid, gid) the server runs as, when started as root.
    owner: Option<(u32, u32)>,
    /// File holding [`PASSWORD`] (for `database_password_file`).
    pub password_file: PathBuf,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|s| s.trim() == "0")
}

fn id_of(flag: &str) -> Option<u32> {
    let o = Command::new("id").args([flag, USER]).output().ok()?;
    if !o.status.success() {
        return None;
    }
    String::from_utf8(o.stdout).ok()?.trim().parse().ok()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Postgres {
    /// Start a fresh server, or `None` (skipped, said on stderr) when PostgreSQL is not
    /// installed outside CI.
    pub fn start(tag: &str) -> Option<Postgres> {
        let bin = pg_bin();
        if !bin.join("initdb").exists() {
            let msg = format!(
                "PostgreSQL server binaries not found in {} (install postgresql-15, see scripts/ensure-deps.sh)",
                bin.display()
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        let owner = if is_root() {
            if id_of("-u").is_none() {
                let st = Command::new("useradd")
                    .args([
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                    ])
                    .arg(USER)
                    .status()
                    .expect("run useradd");
                // Another test may have created it at the same moment.
                assert!(
                    st.success() || id_of("-u").is_some(),
                    "useradd {USER} failed: {st}"
                );
            }
            Some((
                id_of("-u").expect("uid of crossline-test"),
                id_of("-g").expect("gid of crossline-test"),
            ))
        } else {
            None
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("crossline-pg-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create pg dir");
        let password_file = dir.join("password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("write password file");
        let pg = Postgres {
            dir,
            port: free_port(),
            owner,
            password_file,
        };
        if let Some((uid, gid)) = owner {
            let st = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&pg.dir)
                .status()
                .expect("chown");
            assert!(st.success(), "chown {} failed", pg.dir.display());
        }
        let out = pg.run(
            &bin.join("initdb"),
            &[
                "-D",
                pg.data().to_str().expect("utf-8"),
                "-U",
                ROLE,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                pg.password_file.to_str().expect("utf-8"),
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, prog: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(prog);
        cmd.args(args).current_dir(&self.dir);
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("run {}: {e}", prog.display()))
    }

    /// (Re)start the server and wait until it accepts connections.
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let out = self.run(
            &pg_bin().join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().expect("utf-8"),
                "-l",
                self.dir.join("server.log").to_str().expect("utf-8"),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Stop the server (`fast`: clients disconnected, committed work kept).
    pub fn stop_server(&self) {
        let _ = self.run(
            &pg_bin().join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().expect("utf-8"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// `postgresql://crossline@127.0.0.1:PORT/DB` (no password: it comes from a file or the
    /// environment).
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://{ROLE}@127.0.0.1:{}/{db}", self.port)
    }

    /// A client connection (with the password).
    pub fn client(&self, db: &str) -> postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match postgres::Config::new()
                .host("127.0.0.1")
                .port(self.port)
                .user(ROLE)
                .password(PASSWORD)
                .dbname(db)
                .connect(postgres::NoTls)
            {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("connect to {db}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Create a database; returns its URL.
    pub fn create_db(&self, name: &str) -> String {
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create database");
        self.url(name)
    }

    /// `SELECT COUNT(*) FROM table` in a database.
    pub fn count(&self, db: &str, table: &str) -> i64 {
        self.client(db)
            .query_one(&format!("SELECT COUNT(*)::BIGINT FROM {table}"), &[])
            .expect("count")
            .get(0)
    }

    /// Collector config lines selecting database `db` with the password file.
    pub fn config_lines(&self, db: &str) -> String {
        format!(
            "database = \"{}\"\ndatabase_password_file = \"{}\"\n",
            self.url(db),
            self.password_file.display()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run(
            &pg_bin().join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().expect("utf-8"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
