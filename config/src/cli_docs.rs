//! Man pages and shell completions generated from a binary's command-line definition, for
//! packaging: `crossline-agent generate man DIR`, `crossline-collector generate completions DIR`
//! (hidden subcommands, so no build script is needed).

use std::io::Write;
use std::path::{Path, PathBuf};

/// What `generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generated {
    /// One roff page per command and visible subcommand: `DIR/NAME.1`, `DIR/NAME-SUB.1`, ...
    Man,
    /// `DIR/bash/NAME`, `DIR/zsh/_NAME`, `DIR/fish/NAME.fish`.
    Completions,
}

fn named(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn create(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| named(parent, e))?;
    }
    std::fs::File::create(path).map_err(|e| named(path, e))
}

/// The `after_long_help` of a command that lists its exit statuses ([`crate::exit`]) becomes
/// an `EXIT STATUS` section kept line by line (clap_mangen calls it `EXTRA` and fills it).
fn exit_status_section(page: &str) -> String {
    let Some(start) = page.find(".SH EXTRA\nExit status:\n") else {
        return page.to_string();
    };
    let body = start + ".SH EXTRA\nExit status:\n".len();
    let end = page[body..]
        .find("\n.SH ")
        .map_or(page.len(), |i| body + i + 1);
    format!(
        "{}.SH \"EXIT STATUS\"\n.nf\n{}.fi\n{}",
        &page[..start],
        &page[body..end],
        &page[end..]
    )
}

fn man_pages(cmd: &clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let page = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(page.get_filename());
    let mut text = Vec::new();
    page.render(&mut text).map_err(|e| named(&path, e))?;
    let mut file = create(&path)?;
    file.write_all(exit_status_section(&String::from_utf8_lossy(&text)).as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| named(&path, e))?;
    out.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, dir, out)?;
    }
    Ok(())
}

/// Write man pages or completions for `cmd` into `dir` (created when missing); returns the
/// files written.
pub fn generate(cmd: clap::Command, what: Generated, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    // `build` names every subcommand `parent-sub` (the man page file names) and leaves out
    // the `help` subcommand, which needs no page of its own.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let name = cmd.get_name().to_string();
    match what {
        Generated::Man => man_pages(&cmd, dir, &mut out)?,
        Generated::Completions => {
            use clap_complete::Shell;
            for (shell, rel) in [
                (Shell::Bash, format!("bash/{name}")),
                (Shell::Zsh, format!("zsh/_{name}")),
                (Shell::Fish, format!("fish/{name}.fish")),
            ] {
                let path = dir.join(rel);
                let mut file = create(&path)?;
                clap_complete::generate(shell, &mut cmd, name.clone(), &mut file);
                file.flush().map_err(|e| named(&path, e))?;
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// `generate` subcommand body: write the files, list them on stdout; exit code 0 or 1.
pub fn generate_command(cmd: clap::Command, what: Generated, dir: &Path) -> i32 {
    match generate(cmd, what, dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            0
        }
        Err(e) => {
            let what = match what {
                Generated::Man => "man pages",
                Generated::Completions => "shell completions",
            };
            eprintln!("cannot write {what}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        clap::Command::new("tool")
            .version("1.2.3")
            .about("A tool")
            .subcommand(
                clap::Command::new("run")
                    .about("Run it")
                    .arg(clap::Arg::new("config").long("config").help("Config file")),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    /// A fresh temporary directory, removed when dropped (also when the test fails).
    fn tempdir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("crossline-{tag}-"))
            .tempdir()
            .expect("temporary directory")
    }

    #[test]
    fn man_pages_cover_visible_subcommands_only() {
        let scratch = tempdir("man");
        // A directory that does not exist yet: generate creates it.
        let dir = scratch.path().join("out");
        let files = generate(cli(), Generated::Man, &dir).expect("generate");
        let names: Vec<String> = files
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(names, ["tool.1", "tool-run.1"]);
        let run = std::fs::read_to_string(dir.join("tool-run.1")).expect("page");
        assert!(run.contains("Config file"), "{run}");
        assert!(run.contains(".TH"), "{run}");
    }

    #[test]
    fn exit_statuses_get_their_own_man_section() {
        let scratch = tempdir("man-exit");
        // A directory that does not exist yet: generate creates it.
        let dir = scratch.path().join("out");
        let cmd = cli().after_long_help(crate::exit::EXIT_STATUS_HELP);
        generate(cmd, Generated::Man, &dir).expect("generate");
        let page = std::fs::read_to_string(dir.join("tool.1")).expect("page");
        assert!(!page.contains(".SH EXTRA"), "{page}");
        let section = page
            .split(".SH \"EXIT STATUS\"\n.nf\n")
            .nth(1)
            .expect("EXIT STATUS section");
        let (lines, rest) = section.split_once(".fi\n").expect(".fi");
        assert!(
            lines.contains("  64  usage error") && lines.contains("  78  configuration error"),
            "{page}"
        );
        assert!(rest.starts_with(".SH VERSION"), "{page}");
    }

    #[test]
    fn completions_for_three_shells() {
        let scratch = tempdir("compl");
        // A directory that does not exist yet: generate creates it.
        let dir = scratch.path().join("out");
        let files = generate(cli(), Generated::Completions, &dir).expect("generate");
        assert_eq!(files.len(), 3);
        let bash = std::fs::read_to_string(dir.join("bash/tool")).expect("bash");
        assert!(bash.contains("--config"), "{bash}");
        assert!(bash.contains("run"), "{bash}");
        let zsh = std::fs::read_to_string(dir.join("zsh/_tool")).expect("zsh");
        assert!(zsh.starts_with("#compdef tool"), "{zsh}");
        let fish = std::fs::read_to_string(dir.join("fish/tool.fish")).expect("fish");
        assert!(fish.contains("-l config"), "{fish}");
    }

    #[test]
    fn unwritable_dir_is_named() {
        let e = generate(
            cli(),
            Generated::Man,
            Path::new("/proc/crossline-no-such/x"),
        )
        .expect_err("must fail");
        assert!(e.to_string().contains("/proc/crossline-no-such"), "{e}");
    }
}
