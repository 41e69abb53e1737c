//! The self-check report in a real browser: headless Chromium loads the file offline, must log
//! no script or console error, renders the three charts, prints on A4, and leaves a screenshot
//! at `<target>/report-screenshot.png` (Chinese) and `<target>/report-screenshot-en.png`.
//!
//! Chromium is `/usr/bin/chromium` (Debian package `chromium`). When it is missing the test
//! panics under `CI=true` and prints SKIPPED otherwise.

use crossline_agent::report::{render, Lang, ReportData};
use crossline_testgen::report_sample as sample;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    let candidates = [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ];
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map_or_else(|| tmp.to_path_buf(), Path::to_path_buf)
}

/// Run Chromium headless with a fresh profile; kill it after `limit`.
fn run_chromium(browser: &Path, args: &[String], limit: Duration) -> Output {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "chromium-profile-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).expect("profile dir");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("wait for chromium") {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("chromium did not finish within {limit:?}");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let out = child.wait_with_output().expect("chromium output");
    let _ = std::fs::remove_dir_all(&profile);
    out
}

/// Lines of Chromium's log that report a page error.
fn page_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("Uncaught")
                || l.contains(":CONSOLE")
                || l.contains("ERR_FILE_NOT_FOUND")
                || l.contains("Page load failed")
                || (l.contains("net::ERR_") && !l.contains("dbus"))
        })
        .collect()
}

fn write_report(lang: Lang, name: &str) -> PathBuf {
    let (events, _) = sample::events();
    let mut data = ReportData::new();
    for e in &events {
        data.add(e);
    }
    let html = render(&data, &sample::registry(), lang);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, html).expect("write report");
    path
}

#[test]
fn report_renders_in_headless_chromium_without_errors() {
    let Some(browser) = chromium() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium not found (apt-get install -y chromium)");
        }
        eprintln!("SKIPPED: chromium not found (apt-get install -y chromium)");
        return;
    };
    let limit = Duration::from_secs(120);
    for (lang, file, shot, title) in [
        (
            Lang::Zh,
            "report-zh.html",
            "report-screenshot.png",
            "数据出境自查报告",
        ),
        (
            Lang::En,
            "report-en.html",
            "report-screenshot-en.png",
            "Cross-border data export self-check",
        ),
    ] {
        let report = write_report(lang, file);
        let url = format!("file://{}", report.display());

        // 1. The DOM as rendered: the page loaded, charts are there, no error was logged.
        let out = run_chromium(&browser, &["--dump-dom".into(), url.clone()], limit);
        let dom = String::from_utf8_lossy(&out.stdout);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "chromium failed: {log}");
        assert!(dom.contains(title), "{lang:?} title rendered");
        assert_eq!(dom.matches("<svg").count(), 3, "three charts in the DOM");
        assert!(dom.contains("id=\"export-not-filed\""));
        let errors = page_errors(&log);
        assert!(errors.is_empty(), "page errors: {errors:#?}");

        // 2. A screenshot a person can look at.
        let png = target_dir().join(shot);
        let _ = std::fs::remove_file(&png);
        let out = run_chromium(
            &browser,
            &[
                format!("--screenshot={}", png.display()),
                "--window-size=1280,2400".into(),
                url.clone(),
            ],
            limit,
        );
        let log = String::from_utf8_lossy(&out.stderr);
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot: {e}; {log}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");
        // A blank or unstyled page compresses to a few KB; the report has charts and colour.
        assert!(
            bytes.len() > 60_000,
            "screenshot too small ({} B)",
            bytes.len()
        );
        eprintln!("screenshot: {}", png.display());

        // 3. Printing: A4 pages (595 x 842 pt).
        let pdf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{file}.pdf"));
        let _ = std::fs::remove_file(&pdf);
        let out = run_chromium(
            &browser,
            &[
                format!("--print-to-pdf={}", pdf.display()),
                "--no-pdf-header-footer".into(),
                url,
            ],
            limit,
        );
        let log = String::from_utf8_lossy(&out.stderr);
        let doc = std::fs::read(&pdf).unwrap_or_else(|e| panic!("no PDF: {e}; {log}"));
        let text = String::from_utf8_lossy(&doc);
        assert!(text.starts_with("%PDF"), "a PDF file");
        let boxes: Vec<(f64, f64)> = text
            .match_indices("/MediaBox [0 0 ")
            .filter_map(|(i, m)| {
                let rest = &text[i + m.len()..];
                let end = rest.find(']')?;
                let mut it = rest[..end].split_whitespace().map(str::parse::<f64>);
                Some((it.next()?.ok()?, it.next()?.ok()?))
            })
            .collect();
        assert!(!boxes.is_empty(), "pages in the PDF");
        for (w, h) in &boxes {
            assert!(
                (w - 595.3).abs() < 1.5 && (h - 841.9).abs() < 1.5,
                "A4 page, got {w} x {h}"
            );
        }
        eprintln!("{file}: {} A4 pages when printed", boxes.len());
    }
}

/// poppler-utils' `pdftotext` / `pdfinfo` (Debian package `poppler-utils`).
fn poppler() -> Option<(PathBuf, PathBuf)> {
    let text = PathBuf::from("/usr/bin/pdftotext");
    let info = PathBuf::from("/usr/bin/pdfinfo");
    (text.is_file() && info.is_file()).then_some((text, info))
}

fn run(cmd: &Path, args: &[String]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", cmd.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        cmd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Text of the elements `<tag ...>text</tag>` (tags inside removed, entities decoded,
/// whitespace collapsed).
fn element_texts(html: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(a) = rest.find(&open) {
        let after = &rest[a..];
        let Some(gt) = after.find('>') else { break };
        let Some(end) = after.find(&close) else { break };
        let inner = &after[gt + 1..end];
        let mut text = String::new();
        let mut in_tag = false;
        for c in inner.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        let text = text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        out.push(text.split_whitespace().collect::<Vec<_>>().join(" "));
        rest = &after[end + close.len()..];
    }
    out
}

/// The last non-empty lines of each page, whitespace collapsed (`pdftotext -layout`, one page at
/// a time).
fn page_tails(pdftotext: &Path, pdf: &Path, pages: usize) -> Vec<Vec<String>> {
    (1..=pages)
        .map(|p| {
            let text = run(
                pdftotext,
                &[
                    "-layout".into(),
                    "-f".into(),
                    p.to_string(),
                    "-l".into(),
                    p.to_string(),
                    pdf.display().to_string(),
                    "-".into(),
                ],
            );
            let lines: Vec<String> = text
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|l| !l.is_empty())
                .collect();
            lines[lines.len().saturating_sub(2)..].to_vec()
        })
        .collect()
}

/// Printing the long report (the extended sample: many findings, cut tables, excluded traffic)
/// in both languages: A4 pages within the expected count, no section or finding heading as the
/// last line of a page (alone or with only its note under it), no filing id or host broken
/// across lines, and no browser header or footer (URL, date, page numbers) on any page.
#[test]
fn printed_report_keeps_headings_with_their_content_and_ids_whole() {
    let (Some(browser), Some((pdftotext, pdfinfo))) = (chromium(), poppler()) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium or poppler-utils not found (scripts/ensure-deps.sh test)");
        }
        eprintln!(
            "SKIPPED: chromium or pdftotext not found (apt-get install -y chromium poppler-utils)"
        );
        return;
    };
    let (events, _, _) = sample::extended_events();
    let registry = sample::registry();
    let mut data = ReportData::new();
    for e in &events {
        data.add(e);
    }
    let mut ids: Vec<String> = Vec::new();
    for sc in &registry.scenarios {
        ids.push(sc.id.clone());
        ids.push(sc.filing_ref.clone());
    }
    ids.push("upload.cro.example.de".into());
    ids.push("backup.cro.example.de".into());
    for lang in [Lang::Zh, Lang::En] {
        let html = render(&data, &registry, lang);
        let file = format!("report-print-{lang:?}.html").to_lowercase();
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&file);
        std::fs::write(&path, &html).expect("write report");
        let pdf = path.with_extension("pdf");
        let _ = std::fs::remove_file(&pdf);
        let out = run_chromium(
            &browser,
            &[
                format!("--print-to-pdf={}", pdf.display()),
                "--no-pdf-header-footer".into(),
                format!("file://{}", path.display()),
            ],
            Duration::from_secs(120),
        );
        assert!(
            pdf.is_file(),
            "no PDF: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info = run(&pdfinfo, &[pdf.display().to_string()]);
        let pages: usize = info
            .lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("page count");
        assert!(info.contains("(A4)"), "A4 pages: {info}");
        eprintln!("{file}: {pages} pages");
        // The long sample fills a few pages; a card or table per page would take twice as many.
        assert!((4..=9).contains(&pages), "{lang:?}: {pages} pages");

        // Headings: section titles (h2), finding titles (h3, printed after their rule id), and
        // the notes printed under section titles.
        let h2 = element_texts(&html, "h2");
        let h3 = element_texts(&html, "h3");
        let notes: Vec<String> = element_texts(&html, "p class=\"note\"");
        let is_heading = |line: &str| {
            h2.iter().any(|h| line == h)
                || h3
                    .iter()
                    .any(|h| line.starts_with("XB-") && line.contains(h.as_str()))
        };
        for (i, tail) in page_tails(&pdftotext, &pdf, pages).iter().enumerate() {
            if i + 1 == pages {
                continue;
            }
            let last = tail.last().expect("text on every page");
            assert!(
                !is_heading(last),
                "{lang:?}: page {} ends with the heading {last:?}",
                i + 1
            );
            if tail.len() == 2
                && notes
                    .iter()
                    .any(|n| n.starts_with(last.as_str()) || last.starts_with(n.as_str()))
            {
                assert!(
                    !is_heading(&tail[0]),
                    "{lang:?}: page {} ends with a heading and its note: {tail:?}",
                    i + 1
                );
            }
        }

        // Ids whole: an id broken across lines is found only once whitespace is removed.
        let text = run(&pdftotext, &[pdf.display().to_string(), "-".into()]);
        let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for id in &ids {
            let whole = text.matches(id.as_str()).count();
            let joined = flat.matches(id.as_str()).count();
            assert_eq!(whole, joined, "{lang:?}: {id} broken across lines");
        }
        // No browser header or footer.
        assert!(!text.contains("file://"), "{lang:?}: URL printed");
        assert!(
            !text.contains(&format!("1/{pages}")),
            "{lang:?}: page numbers printed"
        );
    }
}

/// Print one probe page: a spacer of `spacer_mm`, then a section as the report writes it
/// (heading and note, then a table). Returns the last two text lines of page 1.
fn probe_page_end(
    browser: &Path,
    pdftotext: &Path,
    style: &str,
    spacer_mm: u32,
    name: &str,
) -> Vec<String> {
    let rows: String = (0..30)
        .map(|i| format!("<tr><td>row {i}</td><td>value {i}</td></tr>"))
        .collect();
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>{style}</style></head><body><main>\
         <div style=\"height:{spacer_mm}mm\"></div><section><div class=\"head\"><h2>Probe heading</h2>\
         <p class=\"note\">The note under the heading.</p></div><table><tbody>{rows}</tbody></table>\
         </section></main></body></html>"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let page = dir.join(format!("{name}-{spacer_mm}.html"));
    std::fs::write(&page, html).expect("probe page");
    let pdf = page.with_extension("pdf");
    let _ = std::fs::remove_file(&pdf);
    run_chromium(
        browser,
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".into(),
            format!("file://{}", page.display()),
        ],
        Duration::from_secs(60),
    );
    page_tails(pdftotext, &pdf, 1).remove(0)
}

/// The report's print CSS keeps a section heading with its note and first table rows wherever
/// the section starts on the page: a heading placed at every height near the bottom of page 1 is
/// never the last line of the page, alone or with only its note. The same probe with a bare
/// `@page` style does leave the heading at the bottom, so the check can fail.
#[test]
fn print_css_keeps_a_heading_with_its_first_rows() {
    let (Some(browser), Some((pdftotext, _))) = (chromium(), poppler()) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium or poppler-utils not found (scripts/ensure-deps.sh test)");
        }
        eprintln!(
            "SKIPPED: chromium or pdftotext not found (apt-get install -y chromium poppler-utils)"
        );
        return;
    };
    let (events, _) = sample::events();
    let mut data = ReportData::new();
    for e in &events {
        data.add(e);
    }
    let html = render(&data, &sample::registry(), Lang::En);
    let css = &html[html.find("<style>").expect("style") + 7..html.find("</style>").expect("end")];
    let orphaned = |tail: &[String]| {
        tail.last().is_some_and(|l| l == "Probe heading")
            || (tail.len() == 2
                && tail[0] == "Probe heading"
                && tail[1] == "The note under the heading.")
    };
    for spacer in (230..=260).step_by(3) {
        let tail = probe_page_end(&browser, &pdftotext, css, spacer, "probe-report");
        assert!(
            !orphaned(&tail),
            "heading {spacer} mm down page 1 is left at the page end: {tail:?}"
        );
    }
    let bare = "@page{size:A4;margin:12mm}body{margin:0;font-size:14px}h2{margin:0}";
    let caught = (251..=257).step_by(3).any(|spacer| {
        orphaned(&probe_page_end(
            &browser,
            &pdftotext,
            bare,
            spacer,
            "probe-bare",
        ))
    });
    assert!(
        caught,
        "without the report's CSS the probe heading should be orphaned"
    );
}
