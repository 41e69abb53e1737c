//! Every reference to a document in the repository points to something the repository holds.
//!
//! Scanned: the text files of the repository (`md`, `rs`, `toml`, `json`, `yml`/`yaml`, `html`,
//! `sh`, `py`), outside `target/`, `.git/` and other hidden folders. Checked:
//!
//! 1. Every mention of a Markdown file, `name.md` or `path/to/name.md`, in any of them (web
//!    addresses are left out): a mention with a `/` must exist relative to the mentioning file's
//!    folder or to the repository root; a bare `name.md` must exist somewhere in the repository.
//! 2. Every relative Markdown link `[text](target)` in a `.md` file: the target must exist
//!    relative to the file's folder (a leading `/` means the repository root), and an anchor
//!    (`file.md#section`, or `#section` in the same file) must be a heading of that file, using
//!    GitHub's rule for heading anchors.
//!
//! The test lists every broken reference as `FILE:LINE: reference: why` and fails if there is one.
//!
//! Two exceptions, both explicit: this file (its comments and unit tests show example
//! references), and [`EXTERNAL`], the documents of the public capture corpus that the corpus
//! tests read at run time from outside the repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Documents of the external public capture corpus (its list of upstream sources and
/// licences), mentioned by the tests and test data that read the corpus. Nothing else may be
/// outside the repository.
const EXTERNAL: [&str; 2] = ["SOURCES.md", "corpus/real/SOURCES.md"];

const EXTENSIONS: [&str; 9] = [
    "md", "rs", "toml", "json", "yml", "yaml", "html", "sh", "py",
];

fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

/// Text files of the repository, sorted.
fn text_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if name.starts_with('.') || name == "target" || name == "node_modules" {
                    continue;
                }
                stack.push(path);
            } else if kind.is_file()
                && path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every file name of the repository (for bare `name.md` mentions).
fn file_names(files: &[PathBuf]) -> BTreeSet<String> {
    files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// The line without web addresses (`http://...`, `https://...`), which may end in `.md`.
fn without_urls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    loop {
        let next = ["http://", "https://"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min();
        match next {
            Some(i) => {
                out.push_str(&rest[..i]);
                let end = rest[i..]
                    .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | '`'))
                    .map_or(rest.len(), |e| i + e);
                out.push(' ');
                rest = &rest[end..];
            }
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// Mentions of Markdown files in a line: maximal runs of path characters ending in `.md` (not
/// followed by another word character), with a non-empty file stem.
fn md_mentions(line: &str) -> Vec<String> {
    let line = without_urls(line);
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_path_char(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_path_char(chars[i]) {
            i += 1;
        }
        let token: String = chars[start..i].iter().collect();
        // A sentence may end right after the name: "see docs/legal.md."
        let token = token.trim_end_matches('.').to_owned();
        if let Some(stem) = token.strip_suffix(".md") {
            let name_stem = stem.rsplit('/').next().unwrap_or(stem);
            if !name_stem.is_empty()
                && name_stem
                    .chars()
                    .any(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                out.push(token);
            }
        }
    }
    out
}

/// Relative link targets of Markdown links `[text](target)` in a line.
fn md_links(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].trim();
        let target = target
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_matches(|c| c == '<' || c == '>');
        if !target.is_empty()
            && !target.contains("://")
            && !target.starts_with("mailto:")
            && !target.contains('{')
        {
            out.push(target.to_owned());
        }
        rest = &after[end..];
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Anchors of the headings of a Markdown file (outside code fences), with GitHub's `-1`, `-2`
/// suffixes for repeated headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        let t = line.trim_start();
        if t.starts_with('#') {
            let heading = t.trim_start_matches('#');
            if heading.starts_with(' ') {
                let base = slug(heading);
                let mut s = base.clone();
                let mut n = 0;
                while out.contains(&s) {
                    n += 1;
                    s = format!("{base}-{n}");
                }
                out.insert(s);
            }
        }
    }
    out
}

fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// Broken references of one file.
/// A document as the Debian packages install it (`/usr/share/doc/crossline-agent/deploy.md`, or
/// `doc/deploy.md` inside the package's staging tree): its file name in `docs/`.
fn packaged_doc(mention: &str) -> Option<&str> {
    let rest = mention.trim_start_matches('/');
    let name = if let Some(r) = rest.strip_prefix("usr/share/doc/crossline-") {
        r.split_once('/')?.1
    } else {
        rest.strip_prefix("doc/")?
    };
    (!name.contains('/')).then_some(name)
}

fn check_file(root: &Path, file: &Path, names: &BTreeSet<String>, out: &mut Vec<String>) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let dir = file.parent().unwrap_or(root);
    let is_md = file.extension().is_some_and(|e| e == "md");
    let mut fence = false;
    for (n, line) in text.lines().enumerate() {
        let at = format!("{}:{}", relative(root, file), n + 1);
        for mention in md_mentions(line) {
            if EXTERNAL.contains(&mention.as_str()) {
                continue;
            }
            let ok = if let Some(name) = packaged_doc(&mention) {
                // Where the Debian packages install the project's docs: the file must be in docs/.
                root.join("docs").join(name).exists()
            } else if mention.contains('/') {
                let m = mention.trim_start_matches("./");
                dir.join(m).exists() || root.join(m.trim_start_matches('/')).exists()
            } else {
                names.contains(&mention)
            };
            if !ok {
                out.push(format!("{at}: {mention}: no such file in the repository"));
            }
        }
        if !is_md {
            continue;
        }
        if line.trim_start().starts_with("```") {
            fence = !fence;
        }
        if fence {
            continue;
        }
        for target in md_links(line) {
            let (path_part, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let resolved = if path_part.is_empty() {
                file.to_path_buf()
            } else if let Some(abs) = path_part.strip_prefix('/') {
                root.join(abs)
            } else {
                dir.join(path_part)
            };
            if !resolved.exists() {
                out.push(format!(
                    "{at}: {target}: {} does not exist",
                    relative(root, &resolved)
                ));
                continue;
            }
            if let Some(anchor) = anchor {
                if resolved.extension().is_some_and(|e| e == "md") {
                    let target_text = std::fs::read_to_string(&resolved).unwrap_or_default();
                    if !anchors(&target_text).contains(anchor) {
                        out.push(format!(
                            "{at}: {target}: no heading with the anchor #{anchor} in {}",
                            relative(root, &resolved)
                        ));
                    }
                }
            }
        }
    }
}

#[test]
fn every_document_reference_points_to_a_file_that_exists() {
    let root = repo_root();
    let files = text_files(&root);
    assert!(
        files.iter().any(|f| f.ends_with("README.md")),
        "repository files found under {}",
        root.display()
    );
    let names = file_names(&files);
    let mut broken = Vec::new();
    // `file!()` is relative to the workspace root or to this crate, depending on how cargo
    // was invoked.
    let this_file = [root.join(file!()), root.join("tests").join(file!())]
        .into_iter()
        .find(|p| p.is_file())
        .expect("this test file");
    for f in files.iter().filter(|f| **f != this_file) {
        check_file(&root, f, &names, &mut broken);
    }
    assert!(
        broken.is_empty(),
        "{} broken document references:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// The documents other parts of the project point to exist, with the sections they name.
#[test]
fn the_project_documents_exist_with_their_sections() {
    let root = repo_root();
    let legal = std::fs::read_to_string(root.join("docs/legal.md")).expect("docs/legal.md");
    let a = anchors(&legal);
    for section in [
        "alert-kinds",
        "incidents-and-deadlines",
        "verdicts",
        "thresholds",
    ] {
        assert!(
            a.contains(section),
            "docs/legal.md has no section #{section}"
        );
    }
    // Every alert kind and rule id of the event contract is explained.
    for kind in crossline_config::event::AlertKind::ALL {
        assert!(
            legal.contains(&format!("`{}`", kind.as_str())),
            "docs/legal.md does not explain {}",
            kind.as_str()
        );
        assert!(
            legal.contains(kind.rule()),
            "docs/legal.md lacks {}",
            kind.rule()
        );
    }
    let events = std::fs::read_to_string(root.join("docs/events.md")).expect("docs/events.md");
    for field in [
        "days_left",
        "valid_from",
        "valid_until",
        "exclude",
        "persons",
        "name_source",
    ] {
        assert!(
            events.contains(&format!("`{field}`")),
            "docs/events.md lacks {field}"
        );
    }
    let registry =
        std::fs::read_to_string(root.join("docs/registry.md")).expect("docs/registry.md");
    for key in [
        "id",
        "name",
        "uscc",
        "green_channel",
        "ftz",
        "ciio",
        "enterprise",
        "basis",
        "exemption",
        "filing_ref",
        "recipient",
        "activity",
        "data",
        "valid_from",
        "valid_until",
        "sources",
        "destinations",
        "services",
        "window",
        "caps",
        "persons_per_year",
    ] {
        assert!(
            registry.contains(&format!("| `{key}` |")),
            "docs/registry.md has no row for {key}"
        );
    }
}

#[test]
fn the_reference_scanner_finds_what_it_should() {
    assert_eq!(
        md_mentions("see docs/legal.md. And `README.md`, not https://x.example/a.md"),
        vec!["docs/legal.md".to_owned(), "README.md".to_owned()]
    );
    assert_eq!(
        md_mentions("// Legal references follow ABC.md section 3"),
        vec!["ABC.md"]
    );
    assert!(md_mentions("file.mdx and .md alone").is_empty());
    assert_eq!(
        md_links("[a](legal.md#alert-kinds) [b](https://x.example) [c](#top)"),
        vec!["legal.md#alert-kinds".to_owned(), "#top".to_owned()]
    );
    assert_eq!(slug(" `[[scenario]]`"), "scenario");
    assert_eq!(slug(" Incidents and deadlines"), "incidents-and-deadlines");
    assert_eq!(slug(" TLS and QUIC"), "tls-and-quic");
}

/// An event with every field the model has set, so that its JSON carries every path the
/// writer can produce (a field added to the model belongs here too).
fn every_field_event(event_type: crossline_config::event::EventType) -> serde_json::Value {
    use crossline_config::event::*;
    let mut e = Event::new(
        event_type,
        format_eve_timestamp(1_772_442_847_118_042),
        "gw".into(),
    );
    let tls = TlsMeta {
        sni: Some("a.example".into()),
        alpn: vec!["h2".into()],
        ech: true,
        ja4: Some("t13d".into()),
        version: Some(1),
    };
    e.flow_id = Some(1);
    e.proto = Some("TCP".into());
    e.vlan = Some(vec![10]);
    e.src_ip = Some("10.0.0.1".into());
    e.src_port = Some(1);
    e.dest_ip = Some("198.51.100.1".into());
    e.dest_port = Some(2);
    e.icmp_type = Some(8);
    e.icmp_code = Some(0);
    e.response_icmp_type = Some(0);
    e.response_icmp_code = Some(0);
    e.community_id = Some("1:x".into());
    e.app_proto = Some("tls".into());
    e.tls = Some(tls.clone());
    e.quic = Some(tls);
    e.http = Some(HttpMeta {
        hostname: Some("a.example".into()),
        http_method: Some("POST".into()),
    });
    e.dns_name = Some("a.example".into());
    e.flow = Some(FlowRecord {
        state: Some("closed".into()),
        reason: "fin".into(),
        midstream: true,
        alerted: true,
        ..FlowRecord::default()
    });
    e.direction = Some(Direction::Export);
    e.export_bytes = Some(1);
    e.verdict = Some(Verdict {
        status: VerdictStatus::Excluded,
        scenario: Some("s".into()),
        enterprise: Some("e".into()),
        name_source: Some("tls".into()),
        ech: true,
        exclude: Some("x".into()),
    });
    e.alert = Some(Alert {
        kind: AlertKind::UnfiledExport,
        severity: Severity::High,
        scenario: Some("s".into()),
        enterprise: Some("e".into()),
        summary: "x".into(),
        rule: "XB-001".into(),
        recipient: Some("r".into()),
        service: Some("tcp/443".into()),
        count: 2,
        bytes: 3,
        evidence: vec!["138****5678".into()],
        persons: Some(4),
        followup: true,
        green_channel: true,
        days_left: Some(5),
        valid_from: Some("2026-01-01".into()),
        valid_until: Some("2027-01-01".into()),
        scope: Some("enterprise".into()),
        gateways: vec!["gw".into()],
    });
    let mut stats = Stats::default();
    for map in [
        &mut stats.decode_errors,
        &mut stats.ignored,
        &mut stats.drops,
        &mut stats.alerts,
        &mut stats.verdicts,
        &mut stats.excluded,
    ] {
        map.insert("x".into(), 1);
    }
    stats.drops.insert("kernel".into(), 1);
    stats.drops.insert("interface".into(), 1);
    stats.file_errors = vec!["x".into()];
    e.stats = Some(stats);
    e.sketch = Some(Sketch {
        enterprise: "e".into(),
        uscc: Some("u".into()),
        key_fingerprint: "k".into(),
        persons: vec![PersonsSketch {
            year: 2026,
            category: "personal".into(),
            registers: "r".into(),
            estimate: 1,
            limit: Some(2),
        }],
        volumes: vec![VolumeSketch {
            scenario: "s".into(),
            day: "2026-03-02".into(),
            bytes: 1,
            cap: Some(2),
        }],
    });
    e.judged = Some(Judged::FirstExport);
    serde_json::to_value(&e).expect("event serialises")
}

/// Dotted paths of every field in `v` (objects and leaves; map keys of counter objects such
/// as `crossline.stats.drops` are data, not fields, and are left out).
fn field_paths(v: &serde_json::Value, base: &str, out: &mut BTreeSet<String>) {
    const MAPS: [&str; 6] = [
        "crossline.stats.decode_errors",
        "crossline.stats.ignored",
        "crossline.stats.drops",
        "crossline.stats.alerts",
        "crossline.stats.verdicts",
        "crossline.stats.excluded",
    ];
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                let p = if base.is_empty() {
                    k.clone()
                } else {
                    format!("{base}.{k}")
                };
                out.insert(p.clone());
                if !MAPS.contains(&p.as_str()) {
                    field_paths(child, &p, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                field_paths(item, base, out);
            }
        }
        _ => {}
    }
}

#[test]
fn docs_events_md_names_every_field_the_agent_can_write() {
    use crossline_config::event::{AlertKind, EventType};
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join("docs/events.md")).expect("docs/events.md");
    let mut paths = BTreeSet::new();
    for t in [
        EventType::Flow,
        EventType::Alert,
        EventType::Stats,
        EventType::Sketch,
    ] {
        field_paths(&every_field_event(t), "", &mut paths);
    }
    assert!(paths.contains("crossline.alert.kind") && paths.contains("stats.decoder.pkts"));
    // A field is documented when the document names it in backticks by its full dotted path
    // or by a tail of it (`kind` in the crossline.alert table, `tls.sni`, ...).
    let mut missing = Vec::new();
    for p in &paths {
        let parts: Vec<&str> = p.split('.').collect();
        let named = (0..parts.len()).any(|i| doc.contains(&format!("`{}`", parts[i..].join("."))));
        if !named {
            missing.push(p.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "docs/events.md does not name these event fields: {missing:?}"
    );
    // The table of EVE signatures is the code's.
    for kind in AlertKind::ALL {
        let row = format!(
            "| `{}` | {} | {} | {} |",
            kind.as_str(),
            kind.signature_id(),
            kind.signature(),
            kind.category()
        );
        assert!(
            doc.contains(&row),
            "docs/events.md lacks the signature row {row}"
        );
    }
}

/// No text file of the repository holds a merge-conflict marker left by a merge (one was once
/// committed into README.md's command table unnoticed).
#[test]
fn no_merge_conflict_markers_are_committed() {
    let root = repo_root();
    let mut found = Vec::new();
    for f in text_files(&root) {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let marker = ["<<<<<<< ", ">>>>>>> "].iter().any(|m| line.starts_with(m))
                || line == "=======" && f.extension().is_none_or(|e| e != "md");
            if marker {
                found.push(format!("{}:{}: {line}", relative(&root, &f), i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "merge-conflict markers:\n{}",
        found.join("\n")
    );
}
