//! HTML rendering of the self-check report: one self-contained file (inline CSS and SVG, no
//! script, no external asset) that opens offline and prints on A4.
//!
//! Every value that came from traffic or configuration goes through [`esc`]. Labels come from
//! the i18n table only.

use super::charts::{self, VERDICT_COLORS};
use super::i18n::{fill, kind_index, verdict_index, Lang, Strings};
use super::text::{esc, fmt_bytes};
use super::{ReportData, ScenarioAgg, ScenarioKey, VERDICTS};
use crossline_config::event::{AlertKind, Severity, VerdictStatus};
use crossline_config::registry::{Basis, Exemption, Registry, Scenario};
use crossline_config::time::{self, Date};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Days before expiry from which a filing is listed as expiring soon.
/// (Order 16 Art. 9 counts 60 *working* days, about 84 calendar days; 90 covers it.)
pub const EXPIRY_WARNING_DAYS: i64 = 90;

/// An integer with thousands separators.
pub fn fmt_int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Beijing local time `YYYY-MM-DD HH:MM:SS` of Unix microseconds.
pub fn fmt_beijing(micros: i64) -> String {
    let t = time::shanghai(micros.div_euclid(1_000_000));
    let s = t.second_of_day;
    format!(
        "{} {:02}:{:02}:{:02}",
        t.date,
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// A bin width in the report's language: `10 s`, `5 min`, `3 h`, `7 d` (`10 秒`, `5 分钟`, ...).
pub fn fmt_width(secs: i64, s: &Strings) -> String {
    let [d, h, min, sec] = s.units;
    if secs % 86_400 == 0 {
        format!("{} {d}", secs / 86_400)
    } else if secs % 3600 == 0 {
        format!("{} {h}", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{} {min}", secs / 60)
    } else {
        format!("{secs} {sec}")
    }
}

/// A duration in the report's language, two units at most: `62 d 23 h 15 min`, `5 min 41 s`,
/// `3.250 s` (`62 天 23 小时 15 分钟`, `5 分钟 41 秒`, ...).
pub fn fmt_duration(micros: i64, s: &Strings) -> String {
    let [ud, uh, um, us] = s.units;
    let secs = micros.max(0) / 1_000_000;
    let (d, h, m, sec) = (
        secs / 86_400,
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d} {ud} {h} {uh} {m} {um}")
    } else if h > 0 {
        format!("{h} {uh} {m} {um}")
    } else if m > 0 {
        format!("{m} {um} {sec} {us}")
    } else {
        format!("{}.{:03} {us}", secs, (micros.max(0) / 1000) % 1000)
    }
}

/// An identifier, host or service that must not break inside: kept on one line when short,
/// allowed to wrap anywhere only when it is too long for a column.
pub fn id_span(value: &str) -> String {
    let class = if value.chars().count() > 40 {
        "id long"
    } else {
        "id"
    };
    format!("<span class=\"{class}\">{}</span>", esc(value))
}

/// The "N of M shown" line under a cut table or list (`at_least`: M is a lower bound).
pub fn shown_line(s: &Strings, shown: usize, total: u64, at_least: bool, why: &str) -> String {
    let template = if at_least {
        s.shown_of_at_least
    } else {
        s.shown_of
    };
    let text = fill(template, &[&fmt_int(shown as u64), &fmt_int(total)]);
    if why.is_empty() {
        format!("<p class=\"cut\">{}</p>", esc(&text))
    } else {
        format!(
            "<p class=\"cut\">{}{}{}</p>",
            esc(&text),
            s.sentence_gap,
            esc(why)
        )
    }
}

/// Names joined with the language's separator: the first `max`, then "and N more".
fn name_list(s: &Strings, names: &[&str], max: usize) -> String {
    let shown: Vec<&str> = names.iter().take(max).copied().collect();
    let mut out = shown.join(s.list_sep);
    if names.len() > max {
        out.push_str(s.list_sep);
        out.push_str(&fill(s.and_more, &[&fmt_int((names.len() - max) as u64)]));
    }
    out
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if p > 0.0 && p < 0.1 {
        "<0.1%".to_owned()
    } else {
        format!("{p:.1}%")
    }
}

fn severity_label(s: &Strings, sev: Severity) -> &'static str {
    s.severities[match sev {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Med => 2,
        Severity::High => 3,
        Severity::Crit => 4,
    }]
}

fn basis_label(s: &Strings, basis: Basis) -> String {
    match basis {
        Basis::SecurityAssessment => s.basis.security_assessment.to_owned(),
        Basis::StandardContract => s.basis.standard_contract.to_owned(),
        Basis::Certification => s.basis.certification.to_owned(),
        Basis::FtzNegativeList => s.basis.ftz_negative_list.to_owned(),
        Basis::Exemption(e) => {
            let article = s.exemption_articles[match e {
                Exemption::Art3 => 0,
                Exemption::Art4 => 1,
                Exemption::Art5Contract => 2,
                Exemption::Art5Hr => 3,
                Exemption::Art5Emergency => 4,
                Exemption::Art5Small => 5,
            }];
            format!("{} · {article}", s.exemption_prefix)
        }
    }
}

const CSS: &str = r#"
:root{--ink:#1f2933;--muted:#5f6b7a;--line:#e3e7ec;--bg:#f5f6f8;--card:#fff;--navy:#1d3557;
--bad:#c0392b;--warn:#b7791f;--ok:#2e8b57}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);
font-family:-apple-system,BlinkMacSystemFont,"Segoe UI","PingFang SC","Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","Microsoft YaHei","Helvetica Neue",Arial,sans-serif;
font-size:14px;line-height:1.55}
main{max-width:1120px;margin:0 auto;padding:0 24px 40px}
header.top{background:var(--navy);color:#fff;padding:26px 24px 22px;margin:0 -24px 20px;display:flex;
justify-content:space-between;align-items:flex-end;gap:24px;flex-wrap:wrap}
header.top h1{margin:0;font-size:26px;font-weight:650;letter-spacing:.02em}
header.top .sub{margin:4px 0 0;opacity:.8}
header.top .meta{font-size:12.5px;opacity:.9;text-align:right}
header.top .meta div{margin-top:2px}
h2{font-size:18px;margin:0 0 4px;font-weight:650}
h3{font-size:16px;margin:0;font-weight:650}
h4{font-size:12px;margin:0 0 4px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.04em}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin:0 0 16px}
section>.note{color:var(--muted);font-size:12.5px;margin:0 0 12px}
.verdict{border-left:6px solid var(--ok)}
.verdict.bad{border-left-color:var(--bad);background:#fdf3f2}
.verdict.warn{border-left-color:var(--warn);background:#fdf8ee}
.verdict p{margin:6px 0 0;font-size:16px}
.verdict p.lead{font-size:18px;font-weight:600}
.overview{display:flex;flex-wrap:wrap;gap:8px;margin-top:12px}
.ov{display:inline-flex;align-items:center;gap:6px;background:#fff;border:1px solid var(--line);border-radius:8px;padding:4px 10px;color:var(--ink);text-decoration:none;font-size:13px}
.ov b{font-variant-numeric:tabular-nums}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;background:none;border:none;padding:0}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.kpi .k{color:var(--muted);font-size:12px}
.kpi .v{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums;line-height:1.25;margin-top:2px}
.kpi .d{color:var(--muted);font-size:12px;margin-top:2px}
.kpi.span{grid-column:span 2}
.kpi.span .v{font-size:15px}
.kpi.bad .v{color:var(--bad)}
.kpi.ok .v{color:var(--ok)}
.chart{width:100%;height:auto;display:block}
.chart .grid{stroke:#edf0f3;stroke-width:1}
.chart .baseline{stroke:#9aa5b1;stroke-width:1}
.chart text{fill:var(--muted);font-size:12px}
.chart .label{fill:var(--ink);font-size:13px}
.chart .value{fill:var(--ink);font-size:12px;font-variant-numeric:tabular-nums}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12.5px;margin:0 0 8px;color:var(--muted)}
.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.empty{color:var(--muted);font-style:italic}
table{width:100%;border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th{text-align:left;color:var(--muted);font-weight:600;font-size:12px;border-bottom:2px solid var(--line);padding:6px 8px}
td{border-bottom:1px solid var(--line);padding:6px 8px;vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}
td.nowrap{white-space:nowrap}
tr.ent td{background:#f0f3f7;font-weight:600;border-top:2px solid var(--line)}
tr.ent td .flags{font-weight:400;color:var(--muted);font-size:12px}
.small{font-size:12px;color:var(--muted)}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px;white-space:nowrap}
.id{white-space:nowrap;word-break:keep-all;overflow-wrap:normal;hyphens:none}
.id.long{white-space:normal;overflow-wrap:anywhere}
.cut{font-size:12px;color:var(--muted);margin:6px 0 0}
span.cut{margin-left:6px}
ul.advice{margin:8px 0 0;padding-left:22px}
ul.advice li{margin:4px 0;font-size:15px}
.badge{display:inline-block;border-radius:999px;padding:1px 9px;font-size:12px;font-weight:600;white-space:nowrap;color:#fff}
.badge.soft{background:#eef1f4;color:var(--ink);font-weight:500}
.sev-crit{background:#7b1e1e}.sev-high{background:#c0392b}.sev-med{background:#d68910}.sev-low{background:#4f81bd}.sev-info{background:#7f8c9a}
.over{color:var(--bad);font-weight:600}
.bar{display:flex;height:8px;border-radius:4px;overflow:hidden;background:#eef1f4;min-width:80px;margin-top:4px}
.bar span{display:block;height:100%}
.finding{border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:0 0 14px;border-left:5px solid #7f8c9a}
.finding.crit{border-left-color:#7b1e1e}.finding.high{border-left-color:#c0392b}.finding.med{border-left-color:#d68910}.finding.low{border-left-color:#4f81bd}
.finding header{display:flex;align-items:center;gap:10px;flex-wrap:wrap}
.finding .rule{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;color:var(--muted);border:1px solid var(--line);border-radius:4px;padding:0 6px}
.finding .meaning{margin:6px 0 10px;color:var(--muted)}
.nums{display:flex;gap:28px;margin:0 0 10px;flex-wrap:wrap}
.nums div b{display:block;font-size:18px;font-variant-numeric:tabular-nums}
.nums div span{font-size:12px;color:var(--muted)}
.cols{display:grid;grid-template-columns:1fr 1.6fr;gap:16px;margin:0 0 10px}
.cols p{margin:0}
.chips{margin:0 0 8px}
.chips b{font-size:12px;color:var(--muted);font-weight:600;margin-right:6px}
.chip{display:inline-block;background:#eef1f4;border-radius:4px;padding:0 7px;margin:2px 4px 2px 0;font-size:12.5px}
.chip.ev{background:#fff4e5;border:1px solid #f5d7a8;font-family:ui-monospace,Menlo,Consolas,monospace}
.chip em{font-style:normal;color:var(--muted);margin-left:4px}
.persons{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}
.person{border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.person .v{font-size:20px;font-weight:650}
.track{position:relative;height:10px;background:#eef1f4;border-radius:5px;margin:8px 0 4px}
.track .fill{position:absolute;left:0;top:0;bottom:0;border-radius:5px}
.track .tick{position:absolute;top:-3px;bottom:-3px;width:2px;background:var(--ink)}
.track .tick.declared{background:#1d6fb8}
.legend i.tick-key{width:3px;height:13px;border-radius:0;background:var(--ink)}
.legend i.tick-key.declared{background:#1d6fb8}
.legend i.fill-key{width:24px;background:linear-gradient(90deg,#2e8b57 0 33%,#d68910 33% 66%,#c0392b 66%)}
.persons-legend{margin-top:10px}
ul.method{margin:0;padding-left:20px;color:var(--muted)}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:20px}
@media (max-width:900px){.kpis{grid-template-columns:repeat(2,1fr)}.cols{grid-template-columns:1fr}}
@page{size:A4;margin:12mm}
@media print{
body{background:#fff;font-size:10pt}
main{max-width:none;padding:0}
header.top{margin:0 0 10px;-webkit-print-color-adjust:exact;print-color-adjust:exact}
section{border:none;padding:6px 0;margin:0 0 8px;break-inside:auto}
.verdict,.kpi,.finding,.chart,.badge,.bar,.chip,.track{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.kpis{grid-template-columns:repeat(3,1fr)}
table{font-size:8.5pt}
th,td{padding:3px 4px}
tr{break-inside:avoid}
thead{display:table-header-group}
h2,h3,h4,.head,.finding header,.finding .meaning{break-after:avoid;page-break-after:avoid}
.head,.finding header,.finding .meaning,.nums,.cols,.chips,.legend,.person{break-inside:avoid}
section.keep,.verdict,.person{break-inside:avoid}
.finding{break-inside:auto}
}
"#;

/// Render the whole report.
pub fn render(data: &ReportData, registry: &Registry, lang: Lang) -> String {
    let s = lang.strings();
    let mut out = String::with_capacity(64 * 1024);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>",
        lang.html_tag(),
        esc(s.title)
    );
    header(&mut out, data, registry, s);
    conclusion(&mut out, data, registry, s);
    kpis(&mut out, data, s);
    charts_section(&mut out, data, s);
    scenarios_section(&mut out, data, registry, s);
    excluded_section(&mut out, data, s);
    persons_section(&mut out, data, registry, s);
    expiring_section(&mut out, data, registry, s);
    findings_section(&mut out, data, registry, lang);
    let _ = write!(
        out,
        "<section id=\"method\"><h2>{}</h2><ul class=\"method\">",
        esc(s.section_method)
    );
    for p in s.method_points {
        let _ = write!(out, "<li>{}</li>", esc(p));
    }
    let _ = writeln!(
        out,
        "</ul></section>\n<footer>{}</footer>\n</main>\n</body>\n</html>",
        esc(s.footer)
    );
    out
}

fn header(out: &mut String, data: &ReportData, registry: &Registry, s: &Strings) {
    let now_micros = data.rendered_micros.or(data.last_micros).unwrap_or(0);
    let names: Vec<String> = registry
        .enterprises
        .iter()
        .take(2)
        .map(|e| esc(&e.name))
        .collect();
    let more = registry.enterprises.len().saturating_sub(2);
    let _ = write!(
        out,
        "<header class=\"top\"><div><h1>{}</h1><p class=\"sub\">{}</p></div><div class=\"meta\">",
        esc(s.title),
        esc(s.subtitle)
    );
    if !names.is_empty() {
        let _ = write!(
            out,
            "<div>{}{}{}{}</div>",
            esc(s.enterprises_in_registry),
            s.colon,
            names.join("<br>"),
            if more > 0 {
                format!(" · {}", esc(&fill(s.and_more, &[&more.to_string()])))
            } else {
                String::new()
            }
        );
    }
    if !data.gateways.is_empty() {
        let gws: Vec<String> = data.gateways.iter().map(|g| esc(g)).collect();
        let _ = write!(
            out,
            "<div>{}{}{}</div>",
            esc(s.gateways),
            s.colon,
            gws.join(s.list_sep)
        );
    }
    let _ = writeln!(
        out,
        "<div>{}{}{}</div></div></header>",
        esc(s.generated),
        s.colon,
        fmt_beijing(now_micros)
    );
}

/// The route sentence for exports that no filing covers, from the persons and data observed.
fn route_sentence(data: &ReportData, s: &Strings) -> String {
    let persons = data.persons.values().copied().max();
    if data.findings.contains_key(&AlertKind::ImportantDataMarker) {
        fill(s.route_important, &[s.route_assessment])
    } else {
        match persons {
            Some(p) if p >= 1_000_000 => fill(s.route_known, &[&fmt_int(p), s.route_assessment]),
            Some(p) if p >= 100_000 => fill(s.route_known, &[&fmt_int(p), s.route_contract]),
            Some(p) => fill(s.route_small, &[&fmt_int(p), s.route_options]),
            None => fill(s.route_unknown, &[s.route_options]),
        }
    }
}

/// Per scenario id: exports with verdict `v` and the names involved (recipients or services),
/// from the flow records, completed by what the alerts of `kind` say.
fn per_scenario(
    data: &ReportData,
    v: VerdictStatus,
    kind: AlertKind,
) -> BTreeMap<Option<String>, (u64, Vec<String>, Option<String>)> {
    let mut out: BTreeMap<Option<String>, (u64, Vec<String>, Option<String>)> = BTreeMap::new();
    let vi = verdict_index(v);
    for ((ent, sc), agg) in &data.scenarios {
        if agg.export_flows[vi] == 0 {
            continue;
        }
        let names = match v {
            VerdictStatus::RecipientNotFiled => &agg.recipients_not_filed,
            _ => &agg.services_not_filed,
        };
        let slot = out
            .entry(sc.clone())
            .or_insert((0, Vec::new(), ent.clone()));
        slot.0 += agg.export_flows[vi];
        for (n, _) in names.ranked() {
            if !slot.1.iter().any(|x| x == n) {
                slot.1.push(n.to_owned());
            }
        }
    }
    if let Some(f) = data.findings.get(&kind) {
        for (id, d) in &f.by_scenario {
            let key = Some(id.clone());
            let from_flows = out.contains_key(&key);
            let ent = f.enterprises.ranked().first().map(|(e, _)| (*e).to_owned());
            let slot = out.entry(key).or_insert((0, Vec::new(), ent));
            if !from_flows {
                slot.0 += d.occurrences;
            }
            let names = match v {
                VerdictStatus::RecipientNotFiled => &d.recipients,
                _ => &d.services,
            };
            for (n, _) in names.ranked() {
                if !slot.1.iter().any(|x| x == n) {
                    slot.1.push(n.to_owned());
                }
            }
        }
    }
    out
}

/// Registry name of an enterprise id, else the id.
fn enterprise_name<'a>(registry: &'a Registry, id: Option<&'a str>) -> &'a str {
    match id {
        Some(id) => registry.enterprise(id).map_or(id, |e| e.name.as_str()),
        None => "–",
    }
}

/// The enterprise of a scenario id: the registry's, else the one the data names.
fn scenario_enterprise<'a>(
    registry: &'a Registry,
    id: Option<&'a str>,
    fallback: Option<&'a str>,
) -> &'a str {
    let from_registry = id
        .and_then(|id| registry.scenarios.iter().find(|sc| sc.id == id))
        .map(|sc| sc.enterprise.as_str());
    enterprise_name(registry, from_registry.or(fallback))
}

/// A validity date of a scenario: the registry's, else what the alerts carry.
fn scenario_date(
    registry: &Registry,
    data: &ReportData,
    kind: AlertKind,
    id: &str,
    until: bool,
) -> String {
    if let Some(sc) = registry.scenarios.iter().find(|sc| sc.id == id) {
        return if until { sc.valid_until } else { sc.valid_from }.to_string();
    }
    data.findings
        .get(&kind)
        .and_then(|f| f.by_scenario.get(id))
        .and_then(|d| {
            if until {
                d.valid_until.clone()
            } else {
                d.valid_from.clone()
            }
        })
        .unwrap_or_else(|| "–".to_owned())
}

/// The specific steps of the conclusion: one per finding and filing, naming the filing.
fn advice(data: &ReportData, registry: &Registry, s: &Strings) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    push_limited(&mut items, recipient_advice(data, registry, s), s);
    items.extend(unfiled_advice(data, s));
    for (v, kind, template, until) in [
        (
            VerdictStatus::FilingNotYetValid,
            AlertKind::FilingNotYetValid,
            s.advice_not_yet_valid,
            false,
        ),
        (
            VerdictStatus::FilingExpired,
            AlertKind::FilingExpired,
            s.advice_expired,
            true,
        ),
    ] {
        let list = validity_advice(data, registry, v, kind, template, until);
        push_limited(&mut items, list, s);
    }
    push_limited(&mut items, service_advice(data, registry, s), s);
    push_limited(&mut items, window_advice(data, registry, s), s);
    push_limited(&mut items, cap_advice(data, registry, s), s);
    push_limited(&mut items, expiring_advice(data, registry, s), s);
    items
}

/// At most three steps of one kind, then "and N more".
fn push_limited(items: &mut Vec<String>, all: Vec<String>, s: &Strings) {
    const PER_KIND: usize = 3;
    let more = all.len().saturating_sub(PER_KIND);
    items.extend(all.into_iter().take(PER_KIND));
    if more > 0 {
        items.push(fill(s.advice_more, &[&fmt_int(more as u64)]));
    }
}

fn recipient_advice(data: &ReportData, registry: &Registry, s: &Strings) -> Vec<String> {
    // A recipient outside an existing filing: amend that filing or stop.
    let mut list = Vec::new();
    for (id, (n, names, ent)) in per_scenario(
        data,
        VerdictStatus::RecipientNotFiled,
        AlertKind::RecipientNotFiled,
    ) {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let recipients = name_list(s, &refs, 3);
        list.push(match &id {
            Some(id) => fill(
                s.advice_recipient,
                &[
                    &fmt_int(n),
                    id,
                    scenario_enterprise(registry, Some(id), ent.as_deref()),
                    &recipients,
                ],
            ),
            None => fill(
                s.advice_recipient_no_filing,
                &[
                    &fmt_int(n),
                    enterprise_name(registry, ent.as_deref()),
                    &recipients,
                ],
            ),
        });
    }
    list
}

fn unfiled_advice(data: &ReportData, s: &Strings) -> Option<String> {
    // No filing at all: the route by data categories and persons.
    let unfiled_vi = verdict_index(VerdictStatus::Unfiled);
    let (n, targets) = if data.export_flows[unfiled_vi] > 0 {
        (data.export_flows[unfiled_vi], &data.unfiled_targets)
    } else {
        match data.findings.get(&AlertKind::UnfiledExport) {
            Some(f) => (f.occurrences, &f.recipients),
            None => (0, &data.unfiled_targets),
        }
    };
    if n == 0 {
        return None;
    }
    let ranked = targets.ranked();
    let names: Vec<&str> = ranked.iter().map(|(r, _)| *r).collect();
    let first = fill(s.advice_unfiled, &[&fmt_int(n), &name_list(s, &names, 3)]);
    Some(format!(
        "{first}{}{}",
        s.sentence_gap,
        route_sentence(data, s)
    ))
}

/// Filings used before they start or after they end.
fn validity_advice(
    data: &ReportData,
    registry: &Registry,
    v: VerdictStatus,
    kind: AlertKind,
    template: &str,
    until: bool,
) -> Vec<String> {
    let mut list = Vec::new();
    for (id, (n, _, ent)) in per_scenario(data, v, kind) {
        let Some(id) = id else { continue };
        list.push(fill(
            template,
            &[
                &id,
                scenario_enterprise(registry, Some(&id), ent.as_deref()),
                &scenario_date(registry, data, kind, &id, until),
                &fmt_int(n),
            ],
        ));
    }
    list
}

fn service_advice(data: &ReportData, registry: &Registry, s: &Strings) -> Vec<String> {
    // A filed recipient, but another service or outside the window: the matching amendment.
    let mut list = Vec::new();
    for (id, (_, services, ent)) in per_scenario(
        data,
        VerdictStatus::ServiceNotFiled,
        AlertKind::ServiceNotFiled,
    ) {
        let Some(id) = id else { continue };
        let refs: Vec<&str> = services.iter().map(String::as_str).collect();
        list.push(fill(
            s.advice_service,
            &[
                &id,
                scenario_enterprise(registry, Some(&id), ent.as_deref()),
                &name_list(s, &refs, 4),
            ],
        ));
    }
    list
}

fn window_advice(data: &ReportData, registry: &Registry, s: &Strings) -> Vec<String> {
    let mut list = Vec::new();
    for (id, (n, _, ent)) in
        per_scenario(data, VerdictStatus::OutsideWindow, AlertKind::OutsideWindow)
    {
        let Some(id) = id else { continue };
        list.push(fill(
            s.advice_window,
            &[
                &id,
                scenario_enterprise(registry, Some(&id), ent.as_deref()),
                &fmt_int(n),
            ],
        ));
    }
    list
}

fn cap_advice(data: &ReportData, registry: &Registry, s: &Strings) -> Vec<String> {
    // Daily caps: days over the cap from the filed bytes, else from the alerts.
    let mut list = Vec::new();
    let cap_alerts = data.findings.get(&AlertKind::VolumeCapExceeded);
    let mut named: Vec<String> = Vec::new();
    for sc in &registry.scenarios {
        let Some(cap) = sc.bytes_per_day else {
            continue;
        };
        let days = data
            .scenarios
            .iter()
            .filter(|(k, _)| k.1.as_deref() == Some(sc.id.as_str()))
            .flat_map(|(_, a)| a.filed_per_day.values())
            .filter(|b| **b > cap)
            .count() as u64;
        let days = if days > 0 {
            days
        } else {
            cap_alerts
                .and_then(|f| f.by_scenario.get(&sc.id))
                .map_or(0, |d| d.occurrences)
        };
        if days > 0 {
            named.push(sc.id.clone());
            list.push(fill(
                s.advice_cap,
                &[
                    &sc.id,
                    enterprise_name(registry, Some(&sc.enterprise)),
                    &fmt_bytes(cap),
                    &fmt_int(days),
                ],
            ));
        }
    }
    if let Some(f) = cap_alerts {
        for (id, d) in &f.by_scenario {
            if !named.contains(id) {
                list.push(fill(
                    s.advice_cap,
                    &[
                        id,
                        scenario_enterprise(registry, Some(id), None),
                        "–",
                        &fmt_int(d.occurrences),
                    ],
                ));
            }
        }
    }
    list
}

fn expiring_advice(data: &ReportData, registry: &Registry, s: &Strings) -> Vec<String> {
    // Filings about to expire.
    let mut list = Vec::new();
    let today = reference_date(data);
    if let Some(f) = data.findings.get(&AlertKind::FilingExpiring) {
        for id in f.by_scenario.keys() {
            // An expired filing already has its step: re-apply, not extend.
            let expired = registry
                .scenarios
                .iter()
                .any(|sc| &sc.id == id && sc.valid_until < today)
                || data
                    .findings
                    .get(&AlertKind::FilingExpired)
                    .is_some_and(|e| e.by_scenario.contains_key(id));
            if expired {
                continue;
            }
            list.push(fill(
                s.advice_expiring,
                &[
                    id,
                    scenario_enterprise(registry, Some(id), None),
                    &scenario_date(registry, data, AlertKind::FilingExpiring, id, true),
                ],
            ));
        }
    }
    list
}

fn conclusion(out: &mut String, data: &ReportData, registry: &Registry, s: &Strings) {
    let verdict_kinds = [
        AlertKind::UnfiledExport,
        AlertKind::RecipientNotFiled,
        AlertKind::ServiceNotFiled,
        AlertKind::FilingExpired,
        AlertKind::FilingNotYetValid,
        AlertKind::OutsideWindow,
    ];
    let alert_occ = |kinds: &[AlertKind]| -> u64 {
        kinds
            .iter()
            .filter_map(|k| data.findings.get(k))
            .map(|f| f.occurrences)
            .sum()
    };
    // From flow records when there are any, else from the alerts alone.
    let (uncovered, recipients, deviating, exports) = if data.flow_records > 0 {
        (
            data.uncovered_exports(),
            data.unfiled_recipients.len() as u64,
            data.deviating_exports(),
            data.exports(),
        )
    } else {
        let kinds = [AlertKind::UnfiledExport, AlertKind::RecipientNotFiled];
        let recipients = kinds
            .iter()
            .filter_map(|k| data.findings.get(k))
            .map(|f| f.recipients.values.len() as u64)
            .sum();
        (
            alert_occ(&kinds),
            recipients,
            alert_occ(&verdict_kinds[2..]),
            0,
        )
    };
    let others = data
        .findings
        .keys()
        .filter(|k| !verdict_kinds.contains(k))
        .count();
    let recipients_text = if data.unfiled_recipients_overflow {
        format!("≥{}", fmt_int(recipients))
    } else {
        fmt_int(recipients)
    };
    let (class, lead) = if uncovered > 0 {
        (
            "bad",
            match (uncovered, recipients) {
                (1, _) => s.verdict_uncovered_one.to_owned(),
                (_, 1) if !data.unfiled_recipients_overflow => {
                    fill(s.verdict_uncovered_one_recipient, &[&fmt_int(uncovered)])
                }
                _ => fill(
                    s.verdict_uncovered,
                    &[&fmt_int(uncovered), &recipients_text],
                ),
            },
        )
    } else if deviating > 0 {
        ("warn", fill(s.verdict_deviation, &[&fmt_int(deviating)]))
    } else if exports > 0 {
        (
            if others > 0 { "warn" } else { "ok" },
            fill(s.verdict_clean, &[&fmt_int(exports)]),
        )
    } else if data.unclassified_flows > 0 && data.unclassified_flows == data.flow_records {
        (
            "warn",
            fill(s.verdict_unclassified, &[&fmt_int(data.unclassified_flows)]),
        )
    } else {
        (
            if others > 0 { "warn" } else { "ok" },
            s.verdict_no_exports.to_owned(),
        )
    };
    let _ = write!(
        out,
        "<section class=\"verdict {class}\" id=\"conclusion\"><div class=\"head\"><h2>{}</h2><p class=\"lead\">{}</p></div>",
        esc(s.conclusion),
        esc(&lead)
    );
    let steps = advice(data, registry, s);
    if !steps.is_empty() {
        out.push_str("<ul class=\"advice\">");
        for step in steps {
            let _ = write!(out, "<li>{}</li>", esc(&step));
        }
        out.push_str("</ul>");
    }
    if others > 0 {
        let _ = write!(
            out,
            "<p>{}</p>",
            esc(&fill(s.verdict_other_findings, &[&others.to_string()]))
        );
    }
    let (excluded_flows, excluded_bytes) = data.excluded_totals();
    if excluded_flows > 0 || excluded_bytes > 0 {
        let _ = write!(
            out,
            "<p>{}</p>",
            esc(&fill(
                s.verdict_excluded,
                &[&fmt_int(excluded_flows), &fmt_bytes(excluded_bytes)]
            ))
        );
    }
    // One link per finding kind, most severe first.
    if !data.findings.is_empty() {
        out.push_str("<div class=\"overview\">");
        for (kind, f) in findings_in_order(data) {
            let sev = f.max_severity.as_str();
            let _ = write!(
                out,
                "<a href=\"#{}\" class=\"ov {sev}\"><span class=\"badge sev-{sev}\">{}</span> {} <b>×{}</b> <span class=\"small\">{}</span></a>",
                kind.as_str(),
                esc(severity_label(s, f.max_severity)),
                esc(s.kind(*kind).name),
                fmt_int(f.occurrences),
                if f.bytes > 0 { fmt_bytes(f.bytes) } else { String::new() }
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</section>\n");
}

fn kpis(out: &mut String, data: &ReportData, s: &Strings) {
    let stats = data.stats_total();
    let span = match (data.first_micros, data.last_micros) {
        (Some(a), Some(b)) => format!("{}<br>– {}", fmt_beijing(a), fmt_beijing(b)),
        _ => "–".to_owned(),
    };
    let duration = match (data.first_micros, data.last_micros) {
        (Some(a), Some(b)) => format!("{} {}", esc(s.duration), esc(&fmt_duration(b - a, s))),
        _ => String::new(),
    };
    let packets = stats
        .as_ref()
        .map_or("–".to_owned(), |t| fmt_int(t.packets));
    let packet_bytes = stats.as_ref().map_or(String::new(), |t| {
        let dropped: u64 = t.drops.values().sum();
        if dropped > 0 {
            format!(
                "{} · <span class=\"over\">{}</span>",
                fmt_bytes(t.bytes),
                esc(&fill(s.drops, &[&fmt_int(dropped)]))
            )
        } else {
            fmt_bytes(t.bytes)
        }
    });
    let flows = stats
        .as_ref()
        .map_or(data.flow_records, |t| t.flows.max(data.flow_records));
    let filed = data.filed_bytes();
    let not_filed = data.not_filed_bytes();
    let total = filed + not_filed;
    let _ = writeln!(
        out,
        "<section class=\"kpis\">\
         <div class=\"kpi span\"><div class=\"k\">{}</div><div class=\"v\">{span}</div><div class=\"d\">{duration}</div></div>\
         <div class=\"kpi\"><div class=\"k\">{}</div><div class=\"v\">{packets}</div><div class=\"d\">{packet_bytes}</div></div>\
         <div class=\"kpi\"><div class=\"k\">{}</div><div class=\"v\">{}</div><div class=\"d\">{} {}</div></div>\
         <div class=\"kpi ok\"><div class=\"k\">{}</div><div class=\"v\" id=\"export-filed\">{}</div><div class=\"d\">{} {}</div></div>\
         <div class=\"kpi{}\"><div class=\"k\">{}</div><div class=\"v\" id=\"export-not-filed\">{}</div><div class=\"d\">{} {}</div></div>\
         </section>",
        esc(s.capture_span),
        esc(s.packets),
        esc(s.flows),
        fmt_int(flows),
        fmt_int(data.cross_border_flows),
        esc(s.cross_border_flows),
        esc(s.export_filed),
        fmt_bytes(filed),
        percent(filed, total),
        esc(s.of_export),
        if not_filed > 0 { " bad" } else { "" },
        esc(s.export_not_filed),
        fmt_bytes(not_filed),
        percent(not_filed, total),
        esc(s.of_export),
    );
}

fn charts_section(out: &mut String, data: &ReportData, s: &Strings) {
    let mut present = [false; VERDICTS];
    for (_, v) in data.series.bins() {
        for (p, b) in present.iter_mut().zip(v) {
            *p |= *b > 0;
        }
    }
    let _ = writeln!(
        out,
        "<section class=\"keep\"><div class=\"head\"><h2>{}</h2><p class=\"note\">{}</p></div>{}{}</section>",
        esc(s.chart_time_title),
        esc(&format!(
            "{}{}{}",
            s.chart_time_note,
            s.sentence_gap,
            fill(s.chart_bin, &[&fmt_width(data.series.width_secs(), s)])
        )),
        charts::legend(s, &present),
        charts::time_series(&data.series, s)
    );
    const TOP: usize = 12;
    let top = data.top_recipients(TOP);
    let mut present = [false; VERDICTS];
    for (_, r) in &top {
        for (p, b) in present.iter_mut().zip(r.bytes) {
            *p |= b > 0;
        }
    }
    let mut notes = String::new();
    if top.iter().any(|(_, r)| r.error > 0) {
        let _ = write!(
            notes,
            "<p class=\"small\">{}</p>",
            esc(s.legend_lower_bound)
        );
    }
    let pruned = data.recipient_floor > 0;
    if data.recipients.len() > top.len() || pruned {
        notes.push_str(&shown_line(
            s,
            top.len(),
            data.recipients.len() as u64,
            pruned,
            s.recipients_kept,
        ));
    }
    let _ = writeln!(
        out,
        "<section class=\"keep\" id=\"recipients\"><div class=\"head\"><h2>{}</h2><p class=\"note\">{}</p></div>{}{}{notes}</section>",
        esc(s.chart_recipients_title),
        esc(s.chart_recipients_note),
        charts::legend(s, &present),
        charts::recipients(&top, s)
    );
    let days = data
        .heat
        .values()
        .filter(|h| h.iter().any(|b| *b > 0))
        .count();
    let heat_cut = if days > charts::HEAT_DAYS {
        shown_line(
            s,
            charts::HEAT_DAYS,
            days as u64,
            data.heat.len() >= super::DAY_CAPACITY,
            s.days_kept,
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "<section class=\"keep\" id=\"heat\"><div class=\"head\"><h2>{}</h2><p class=\"note\">{}</p></div>{}{heat_cut}</section>",
        esc(s.chart_heat_title),
        esc(s.chart_heat_note),
        charts::heat_map(&data.heat, s)
    );
}

/// Excluded infrastructure traffic, per `[[exclude]]` entry: never a finding, never dropped.
fn excluded_section(out: &mut String, data: &ReportData, s: &Strings) {
    if data.excluded.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<section id=\"excluded\"><div class=\"head\"><h2>{}</h2><p class=\"note\">{}</p></div>\
         <table><thead><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th>{}</th></tr></thead><tbody>",
        esc(s.section_excluded),
        esc(s.section_excluded_note),
        esc(s.col_exclude_entry),
        esc(s.col_flows),
        esc(s.col_export),
        esc(s.recipients)
    );
    let mut rows: Vec<(&String, &super::ExcludedAgg)> = data.excluded.iter().collect();
    rows.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
    for (name, e) in rows {
        let ranked = e.recipients.ranked();
        let names: Vec<String> = ranked.iter().take(6).map(|(r, _)| id_span(r)).collect();
        let mut cell = names.join(" ");
        if ranked.len() > 6 || e.recipients.others > 0 {
            let _ = write!(
                cell,
                " <span class=\"cut\">{}</span>",
                esc(&fill(
                    if e.recipients.others > 0 {
                        s.shown_of_at_least
                    } else {
                        s.shown_of
                    },
                    &[
                        &fmt_int(ranked.len().min(6) as u64),
                        &fmt_int(ranked.len() as u64 + u64::from(e.recipients.others > 0))
                    ]
                ))
            );
        }
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{cell}</td></tr>",
            id_span(name),
            fmt_int(e.flows),
            fmt_bytes(e.bytes)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

/// The last Beijing day of the capture (the day it is rendered when nothing was captured).
fn reference_date(data: &ReportData) -> Date {
    let micros = data.last_micros.or(data.rendered_micros).unwrap_or(0);
    time::shanghai(micros.div_euclid(1_000_000)).date
}

fn validity_badge(sc: &Scenario, today: Date, s: &Strings) -> String {
    if today < sc.valid_from {
        let days = sc.valid_from.days_since_epoch() - today.days_since_epoch();
        return format!(
            "<span class=\"badge sev-low\">{}</span>",
            esc(&fill(
                s.starts_on,
                &[&sc.valid_from.to_string(), &days.to_string()]
            ))
        );
    }
    let left = sc.valid_until.days_since_epoch() - today.days_since_epoch();
    if left < 0 {
        format!(
            "<span class=\"badge sev-high\">{}</span>",
            esc(&fill(s.expired_on, &[&sc.valid_until.to_string()]))
        )
    } else if left <= EXPIRY_WARNING_DAYS {
        format!(
            "<span class=\"badge sev-med\">{}</span>",
            esc(&fill(s.expires_in, &[&left.to_string()]))
        )
    } else {
        format!("<span class=\"badge soft\">{}</span>", esc(s.valid))
    }
}

fn verdict_bar(bytes: &[u64; VERDICTS]) -> String {
    let total: u64 = bytes.iter().sum();
    if total == 0 {
        return String::new();
    }
    let mut out = String::from("<div class=\"bar\">");
    for v in charts::STACK_ORDER {
        let i = verdict_index(v);
        if bytes[i] > 0 {
            let _ = write!(
                out,
                "<span style=\"width:{:.2}%;background:{}\"></span>",
                bytes[i] as f64 * 100.0 / total as f64,
                VERDICT_COLORS[i]
            );
        }
    }
    out.push_str("</div>");
    out
}

fn scenario_row(
    out: &mut String,
    s: &Strings,
    id: &str,
    sc: Option<&Scenario>,
    agg: Option<&ScenarioAgg>,
    today: Date,
) {
    let empty = ScenarioAgg::default();
    let agg = agg.unwrap_or(&empty);
    let (basis, recipient, validity, cap) = match sc {
        Some(sc) => (
            esc(&basis_label(s, sc.basis)),
            format!(
                "{} <span class=\"small\">{}</span>",
                esc(&sc.recipient.name),
                esc(&sc.recipient.country)
            ),
            format!(
                "{} – {}<br>{}",
                sc.valid_from,
                sc.valid_until,
                validity_badge(sc, today, s)
            ),
            sc.bytes_per_day,
        ),
        None => (
            "–".to_owned(),
            "–".to_owned(),
            format!("<span class=\"small\">{}</span>", esc(s.unregistered)),
            None,
        ),
    };
    let max_day = agg.filed_per_day.values().copied().max().unwrap_or(0);
    let (cap_text, max_text, over_text) = match cap {
        Some(cap) => {
            let over = agg.filed_per_day.values().filter(|b| **b > cap).count();
            let max_cls = if max_day > cap { " class=\"over\"" } else { "" };
            (
                fmt_bytes(cap),
                if agg.filed_per_day.is_empty() {
                    "–".to_owned()
                } else {
                    format!("<span{max_cls}>{}</span>", fmt_bytes(max_day))
                },
                if over > 0 {
                    format!("<span class=\"over\">{over}</span>")
                } else {
                    "0".to_owned()
                },
            )
        }
        None => (
            format!("<span class=\"small\">{}</span>", esc(s.no_cap)),
            if max_day > 0 {
                fmt_bytes(max_day)
            } else {
                "–".to_owned()
            },
            "–".to_owned(),
        ),
    };
    let sub = sc.map_or(String::new(), |sc| {
        format!(
            "<br><span class=\"small mono\">{}</span>",
            esc(&sc.filing_ref)
        )
    });
    let export = if agg.total() == 0 && agg.flows == 0 {
        format!("<span class=\"small\">{}</span>", esc(s.unused))
    } else {
        format!("{}{}", fmt_bytes(agg.total()), verdict_bar(&agg.bytes))
    };
    let _ = write!(
        out,
        "<tr><td><span class=\"mono\">{}</span>{sub}</td><td>{basis}</td><td>{recipient}</td><td class=\"nowrap small\">{validity}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{export}</td><td class=\"n\">{cap_text}</td><td class=\"n\">{max_text}</td><td class=\"n\">{over_text}</td></tr>",
        esc(id),
        fmt_int(agg.flows),
    );
}

fn scenarios_section(out: &mut String, data: &ReportData, registry: &Registry, s: &Strings) {
    let today = reference_date(data);
    let _ = write!(
        out,
        "<section id=\"scenarios\"><div class=\"head\"><h2>{}</h2><p class=\"note\">{}</p></div>{}<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
         <th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr></thead><tbody>",
        esc(s.section_scenarios),
        esc(s.section_scenarios_note),
        {
            // The bar under each export figure uses the verdict colours: say which.
            let mut present = [false; VERDICTS];
            for agg in data.scenarios.values() {
                for (p, b) in present.iter_mut().zip(agg.bytes) {
                    *p |= b > 0;
                }
            }
            charts::legend(s, &present)
        },
        esc(s.col_scenario),
        esc(s.col_basis),
        esc(s.col_recipient),
        esc(s.col_validity),
        esc(s.col_flows),
        esc(s.col_export),
        esc(s.col_cap),
        esc(s.col_max_day),
        esc(s.col_days_over),
    );
    // Observed buckets grouped by enterprise id.
    let mut by_enterprise: BTreeMap<Option<&str>, Vec<(&ScenarioKey, &ScenarioAgg)>> =
        BTreeMap::new();
    for (k, agg) in &data.scenarios {
        by_enterprise
            .entry(k.0.as_deref())
            .or_default()
            .push((k, agg));
    }
    let mut shown_enterprises: Vec<Option<&str>> = registry
        .enterprises
        .iter()
        .map(|e| Some(e.id.as_str()))
        .collect();
    for k in by_enterprise.keys() {
        if !shown_enterprises.contains(k) {
            shown_enterprises.push(*k);
        }
    }
    for ent in shown_enterprises {
        let observed = by_enterprise.get(&ent).cloned().unwrap_or_default();
        let mut total = [0u64; VERDICTS];
        for (_, agg) in &observed {
            for (t, b) in total.iter_mut().zip(agg.bytes) {
                *t += b;
            }
        }
        let (title, flags) = match ent.and_then(|id| registry.enterprise(id)) {
            Some(e) => {
                let mut flags = format!(
                    "{} <span class=\"mono\">{}</span>",
                    esc(s.uscc),
                    esc(&e.uscc)
                );
                for (on, label) in [
                    (e.ciio, s.ciio),
                    (e.green_channel, s.green_channel),
                    (e.ftz, s.ftz),
                ] {
                    if on {
                        let _ = write!(flags, " · {}", esc(label));
                    }
                }
                (esc(&e.name), flags)
            }
            None => (
                esc(ent.unwrap_or(s.unknown_enterprise)),
                esc(s.unregistered),
            ),
        };
        let _ = write!(
            out,
            "<tr class=\"ent\"><td colspan=\"5\">{title} <span class=\"flags\">{flags}</span></td>\
             <td class=\"n\">{}</td><td colspan=\"3\"></td></tr>",
            fmt_bytes(total.iter().sum())
        );
        // Registry scenarios of this enterprise first, then observed buckets not in it.
        let mut done: Vec<&str> = Vec::new();
        if let Some(ent_id) = ent {
            for sc in registry
                .scenarios
                .iter()
                .filter(|sc| sc.enterprise == ent_id)
            {
                let agg = observed
                    .iter()
                    .find(|(k, _)| k.1.as_deref() == Some(sc.id.as_str()))
                    .map(|(_, a)| *a);
                scenario_row(out, s, &sc.id, Some(sc), agg, today);
                done.push(sc.id.as_str());
            }
        }
        for (k, agg) in &observed {
            match k.1.as_deref() {
                Some(id) if done.contains(&id) => {}
                Some(id) => {
                    let sc = registry.scenarios.iter().find(|sc| sc.id == id);
                    scenario_row(out, s, id, sc, Some(agg), today);
                }
                None => scenario_row(out, s, s.no_filing, None, Some(agg), today),
            }
        }
    }
    out.push_str("</tbody></table></section>\n");
}

fn persons_section(out: &mut String, data: &ReportData, registry: &Registry, s: &Strings) {
    let _ = write!(
        out,
        "<section id=\"persons\"><div class=\"head\"><h2>{}</h2><p class=\"note\">{}</p></div>",
        esc(s.section_persons),
        esc(s.section_persons_note)
    );
    let mut ids: Vec<&str> = registry.enterprises.iter().map(|e| e.id.as_str()).collect();
    for k in data.persons.keys() {
        if !ids.contains(&k.as_str()) {
            ids.push(k);
        }
    }
    out.push_str("<div class=\"persons\">");
    for id in ids {
        let estimate = data.persons.get(id).copied();
        let declared: Option<u64> = registry
            .scenarios
            .iter()
            .filter(|sc| sc.enterprise == id)
            .filter_map(|sc| sc.persons_per_year)
            .max();
        let name = registry.enterprise(id).map_or_else(
            || {
                if id.is_empty() {
                    s.unknown_enterprise.to_owned()
                } else {
                    id.to_owned()
                }
            },
            |e| e.name.clone(),
        );
        let est = estimate.unwrap_or(0);
        // Scale: up to the next threshold above the estimate (declared, 100k, 1M).
        let mut marks: Vec<u64> = vec![100_000, 1_000_000];
        if let Some(d) = declared {
            marks.push(d);
        }
        marks.sort_unstable();
        let scale = marks
            .iter()
            .copied()
            .find(|m| *m > est)
            .unwrap_or(est.max(1))
            .max(1);
        let scale = scale + scale / 10;
        let fill_color = if est >= 1_000_000 {
            "#c0392b"
        } else if est >= 100_000 || declared.is_some_and(|d| est >= d) {
            "#d68910"
        } else {
            "#2e8b57"
        };
        let _ = write!(
            out,
            "<div class=\"person\"><div><b>{}</b></div><div class=\"small\">{}</div><div class=\"v\">{}</div>\
             <div class=\"track\"><div class=\"fill\" style=\"width:{:.2}%;background:{fill_color}\"></div>",
            esc(&name),
            esc(s.persons_estimate),
            estimate.map_or("–".to_owned(), fmt_int),
            (est as f64 * 100.0 / scale as f64).min(100.0)
        );
        for m in &marks {
            if *m <= scale {
                let class = if declared == Some(*m) && *m != 100_000 && *m != 1_000_000 {
                    "tick declared"
                } else {
                    "tick"
                };
                let _ = write!(
                    out,
                    "<div class=\"{class}\" style=\"left:{:.2}%\" title=\"{}\"></div>",
                    *m as f64 * 100.0 / scale as f64,
                    fmt_int(*m)
                );
            }
        }
        let _ = write!(
            out,
            "</div><div class=\"small\">{}{}{} · {}{}100,000 / 1,000,000 / 10,000*</div></div>",
            esc(s.persons_declared),
            s.colon,
            declared.map_or("–".to_owned(), fmt_int),
            esc(s.thresholds),
            s.colon
        );
    }
    let _ = write!(
        out,
        "</div><div class=\"legend persons-legend\"><span><i class=\"tick-key\"></i>{}</span>\
         <span><i class=\"tick-key declared\"></i>{}</span><span><i class=\"fill-key\"></i>{}</span></div>",
        esc(s.legend_threshold),
        esc(s.legend_declared),
        esc(s.legend_persons_fill)
    );
    let _ = writeln!(
        out,
        "<p class=\"small\">{}<br>{}<br>* {}</p></section>",
        esc(s.threshold_small),
        esc(s.threshold_assessment),
        esc(s.threshold_sensitive)
    );
}

fn expiring_section(out: &mut String, data: &ReportData, registry: &Registry, s: &Strings) {
    let today = reference_date(data);
    let exports_with = |id: &str, v: VerdictStatus| -> u64 {
        data.scenarios
            .iter()
            .filter(|(k, _)| k.1.as_deref() == Some(id))
            .map(|(_, a)| a.export_flows[verdict_index(v)])
            .sum()
    };
    let validity_kinds = [
        AlertKind::FilingExpiring,
        AlertKind::FilingExpired,
        AlertKind::FilingNotYetValid,
    ];
    let named_by_alerts = |id: &str| {
        validity_kinds.iter().any(|k| {
            data.findings.get(k).is_some_and(|f| {
                f.by_scenario.contains_key(id) || f.scenarios.values.contains_key(id)
            })
        })
    };
    // Every filing that expires soon, has expired, has not started yet, or that traffic or an
    // alert found outside its validity.
    let mut rows: Vec<&Scenario> = registry
        .scenarios
        .iter()
        .filter(|sc| {
            today < sc.valid_from
                || sc.valid_until.days_since_epoch() - today.days_since_epoch()
                    <= EXPIRY_WARNING_DAYS
                || exports_with(&sc.id, VerdictStatus::FilingExpired) > 0
                || exports_with(&sc.id, VerdictStatus::FilingNotYetValid) > 0
                || named_by_alerts(&sc.id)
        })
        .collect();
    // Scenarios named by validity alerts but missing from the registry are still mentioned.
    let mut extra: Vec<String> = Vec::new();
    for kind in validity_kinds {
        if let Some(f) = data.findings.get(&kind) {
            for (id, _) in f.scenarios.ranked() {
                if registry.scenarios.iter().all(|sc| sc.id != id) && !extra.iter().any(|e| e == id)
                {
                    extra.push(id.to_owned());
                }
            }
        }
    }
    rows.sort_by_key(|sc| (sc.valid_until, sc.valid_from));
    let _ = write!(
        out,
        "<section id=\"validity\"><div class=\"head\"><h2>{}</h2><p class=\"note\">{}</p></div>",
        esc(s.section_expiring),
        esc(s.section_expiring_note)
    );
    if rows.is_empty() && extra.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"small\">{}</p></section>",
            esc(s.none_expiring)
        );
        return;
    }
    let _ = write!(
        out,
        "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        esc(s.col_scenario),
        esc(s.col_enterprise),
        esc(s.col_basis),
        esc(s.col_validity),
        esc(s.col_status),
        esc(s.what_to_do)
    );
    for sc in rows {
        let ent = enterprise_name(registry, Some(&sc.enterprise));
        let before = exports_with(&sc.id, VerdictStatus::FilingNotYetValid);
        let after = exports_with(&sc.id, VerdictStatus::FilingExpired);
        let mut status = validity_badge(sc, today, s);
        if before > 0 {
            let _ = write!(
                status,
                "<br><span class=\"over\">{}</span>",
                esc(&fill(s.exports_before_start, &[&fmt_int(before)]))
            );
        }
        if after > 0 {
            let _ = write!(
                status,
                "<br><span class=\"over\">{}</span>",
                esc(&fill(s.exports_after_end, &[&fmt_int(after)]))
            );
        }
        let left = sc.valid_until.days_since_epoch() - today.days_since_epoch();
        let action = if today < sc.valid_from || before > 0 {
            s.action_hold
        } else if left < 0 || after > 0 {
            s.action_reapply
        } else if left <= EXPIRY_WARNING_DAYS {
            s.action_renew
        } else {
            "–"
        };
        let _ = write!(
            out,
            "<tr><td>{}<br><span class=\"small\">{}</span></td><td>{}</td><td>{}</td><td class=\"nowrap\">{} – {}</td><td>{}</td><td>{}</td></tr>",
            id_span(&sc.id),
            id_span(&sc.filing_ref),
            esc(ent),
            esc(&basis_label(s, sc.basis)),
            sc.valid_from,
            sc.valid_until,
            status,
            esc(action)
        );
    }
    for id in extra {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>–</td><td>–</td><td>–</td><td><span class=\"small\">{}</span></td><td>–</td></tr>",
            id_span(&id),
            esc(s.unregistered)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn chips(out: &mut String, label: &str, tally: &super::Tally, class: &str, s: &Strings) {
    const SHOWN: usize = 12;
    if tally.values.is_empty() {
        return;
    }
    let _ = write!(out, "<div class=\"chips\"><b>{}</b>", esc(label));
    let ranked = tally.ranked();
    for (value, n) in ranked.iter().take(SHOWN) {
        let _ = write!(
            out,
            "<span class=\"chip{class}\">{}<em>×{}</em></span>",
            id_span(value),
            fmt_int(*n)
        );
    }
    // More values than shown, or more than the bounded tally could keep.
    if ranked.len() > SHOWN || tally.others > 0 {
        let total = ranked.len() as u64 + u64::from(tally.others > 0);
        let _ = write!(
            out,
            "<span class=\"cut\">{}</span>",
            esc(&fill(
                if tally.others > 0 {
                    s.shown_of_at_least
                } else {
                    s.shown_of
                },
                &[&fmt_int(ranked.len().min(SHOWN) as u64), &fmt_int(total)]
            ))
        );
    }
    out.push_str("</div>");
}

/// One example alert as a sentence in the report's language, from the alert's fields (never
/// its `summary`, which is English).
fn example_sentence(
    kind: AlertKind,
    e: &super::Example,
    registry: &Registry,
    s: &Strings,
) -> String {
    let sc = e
        .scenario
        .as_deref()
        .and_then(|id| registry.scenarios.iter().find(|sc| sc.id == id));
    let valid_from = e
        .valid_from
        .clone()
        .or_else(|| sc.map(|sc| sc.valid_from.to_string()))
        .unwrap_or_else(|| "–".to_owned());
    let valid_until = e
        .valid_until
        .clone()
        .or_else(|| sc.map(|sc| sc.valid_until.to_string()))
        .unwrap_or_else(|| "–".to_owned());
    let cap = sc
        .and_then(|sc| sc.bytes_per_day)
        .map_or_else(|| "–".to_owned(), fmt_bytes);
    let bytes = fmt_bytes(e.bytes);
    let mut why = fill(
        s.ex_why[kind_index(kind)],
        &[
            e.scenario.as_deref().unwrap_or("–"),
            &valid_from,
            &valid_until,
            &e.persons.map_or_else(|| "–".to_owned(), fmt_int),
            &fmt_int(e.count),
            &bytes,
            &cap,
            e.service.as_deref().unwrap_or("–"),
        ],
    );
    if let Some(days) = e.days_left {
        match kind {
            AlertKind::FilingNotYetValid => {
                why.push_str(&fill(s.ex_days_until, &[&days.to_string()]))
            }
            AlertKind::FilingExpiring => {
                why.push_str(&fill(s.ex_working_days_left, &[&days.to_string()]));
            }
            _ => {}
        }
    }
    let flow_kind = !matches!(
        kind,
        AlertKind::FilingExpiring
            | AlertKind::PersonsThreshold
            | AlertKind::SensorGap
            | AlertKind::VolumeCapExceeded
            | AlertKind::VolumeSurge
    );
    let mut sentence = match (&e.recipient, &e.service) {
        (Some(r), Some(sv)) if flow_kind => {
            format!("{}{}{why}", fill(s.ex_flow, &[&bytes, r, sv]), s.ex_join)
        }
        _ => why,
    };
    if let Some(first) = sentence.chars().next() {
        if first.is_ascii_lowercase() {
            sentence.replace_range(..1, &first.to_ascii_uppercase().to_string());
        }
    }
    sentence.push_str(s.sentence_end);
    if e.count > 1 {
        let _ = write!(sentence, " ×{}", fmt_int(e.count));
    }
    sentence
}

/// Finding kinds, most severe first, then in rule order.
fn findings_in_order(data: &ReportData) -> Vec<(&AlertKind, &super::FindingAgg)> {
    let mut kinds: Vec<(&AlertKind, &super::FindingAgg)> = data.findings.iter().collect();
    kinds.sort_by(|a, b| {
        b.1.max_severity
            .cmp(&a.1.max_severity)
            .then(kind_index(*a.0).cmp(&kind_index(*b.0)))
    });
    kinds
}

fn findings_section(out: &mut String, data: &ReportData, registry: &Registry, lang: Lang) {
    let s = lang.strings();
    let _ = write!(
        out,
        "<section id=\"findings\"><div class=\"head\"><h2>{}</h2><p class=\"note\">{}</p></div>",
        esc(s.section_findings),
        esc(s.section_findings_note)
    );
    if data.findings.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"small\">{}</p></section>",
            esc(s.no_findings)
        );
        return;
    }
    for (kind, f) in findings_in_order(data) {
        let t = s.kind(*kind);
        let sev = f.max_severity.as_str();
        let _ = write!(
            out,
            "<article class=\"finding {sev}\" id=\"{}\"><header><span class=\"rule\">{}</span><h3>{}</h3>\
             <span class=\"badge sev-{sev}\">{}</span><span class=\"small mono\">{}</span></header>\
             <p class=\"meaning\">{}</p><div class=\"nums\">\
             <div><b>{}</b><span>{}</span></div><div><b>{}</b><span>{}</span></div><div><b>{}</b><span>{}</span></div>",
            kind.as_str(),
            kind.rule(),
            esc(t.name),
            esc(severity_label(s, f.max_severity)),
            kind.as_str(),
            esc(t.meaning),
            fmt_int(f.alerts),
            esc(s.alerts),
            fmt_int(f.occurrences),
            esc(s.occurrences),
            if f.bytes > 0 { fmt_bytes(f.bytes) } else { "–".to_owned() },
            esc(s.bytes),
        );
        if let Some(p) = f.persons {
            let _ = write!(
                out,
                "<div><b>{}</b><span>{}</span></div>",
                fmt_int(p),
                esc(s.col_persons)
            );
        }
        let _ = write!(
            out,
            "</div><div class=\"cols\"><div><h4>{}</h4><p>{}</p></div><div><h4>{}</h4><p>{}</p></div></div>",
            esc(s.legal_basis),
            esc(t.basis),
            esc(s.what_to_do),
            esc(t.action)
        );
        chips(out, s.recipients, &f.recipients, "", s);
        chips(out, s.services, &f.services, "", s);
        // Enterprises by their registered name where the registry knows the id.
        let mut named = super::Tally {
            values: BTreeMap::new(),
            others: f.enterprises.others,
        };
        for (id, n) in &f.enterprises.values {
            let name = registry
                .enterprise(id)
                .map_or(id.as_str(), |e| e.name.as_str());
            *named.values.entry(name.to_owned()).or_default() += n;
        }
        chips(out, s.col_enterprise, &named, "", s);
        chips(out, s.evidence, &f.evidence, " ev", s);
        if !f.examples.is_empty() {
            let mut examples: Vec<&super::Example> = f.examples.iter().collect();
            examples.sort_by_key(|e| e.micros);
            let _ = write!(
                out,
                "<table class=\"examples\" data-shown=\"{}\" data-total=\"{}\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th class=\"n\">{}</th></tr></thead><tbody>",
                examples.len(),
                f.alerts,
                esc(s.col_time),
                esc(s.col_summary),
                esc(s.col_recipient),
                esc(s.services),
                esc(s.bytes)
            );
            for e in &examples {
                // The agent's own English sentence stays reachable as a tooltip in the English
                // report only.
                let tip = if lang == Lang::En {
                    format!(" title=\"{}\"", esc(&e.summary))
                } else {
                    String::new()
                };
                let _ = write!(
                    out,
                    "<tr{tip}><td class=\"small nowrap\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                    if e.micros > 0 { fmt_beijing(e.micros) } else { "–".to_owned() },
                    esc(&example_sentence(*kind, e, registry, s)),
                    id_span(e.recipient.as_deref().unwrap_or("–")),
                    id_span(e.service.as_deref().unwrap_or("–")),
                    fmt_bytes(e.bytes)
                );
            }
            out.push_str("</tbody></table>");
            if f.alerts > examples.len() as u64 {
                out.push_str(&shown_line(
                    s,
                    examples.len(),
                    f.alerts,
                    false,
                    s.examples_kept,
                ));
            }
        }
        out.push_str("</article>\n");
    }
    out.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(999), "999 B");
        assert_eq!(fmt_bytes(4311), "4.31 KB");
        assert_eq!(fmt_bytes(18_200_000), "18.2 MB");
        assert_eq!(fmt_bytes(3_400_000_000), "3.40 GB");
        assert_eq!(fmt_int(1_234_567), "1,234,567");
        assert_eq!(fmt_int(12), "12");
        let (en, zh) = (Lang::En.strings(), Lang::Zh.strings());
        assert_eq!(fmt_width(30, en), "30 s");
        assert_eq!(fmt_width(10, zh), "10 秒");
        assert_eq!(fmt_width(600, en), "10 min");
        assert_eq!(fmt_width(10_800, zh), "3 小时");
        assert_eq!(fmt_width(604_800, en), "7 d");
        assert_eq!(fmt_duration(341_000_000, en), "5 min 41 s");
        assert_eq!(fmt_duration(341_000_000, zh), "5 分钟 41 秒");
        assert_eq!(fmt_duration(5_443_000_000_000, zh), "62 天 23 小时 56 分钟");
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(fmt_beijing(1_772_442_847_118_000), "2026-03-02 17:14:07");
    }
}
