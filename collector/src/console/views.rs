//! The console's pages as HTML fragments (inside [`super::page::frame`]).

use super::page::{attr, esc, qenc, Lang};
use super::ListQuery;
use crate::api::STATUSES;
use crate::report::{format_beijing, grade_zh, kind_zh};
use crate::util::parse_rfc3339_ms;
use crossline_config::collector::{CollectorConfig, Role, Token};
use serde_json::Value;
use std::fmt::Write as _;

/// The docs/legal.md text shipped with the collector (alert kinds and their legal basis).
const LEGAL: &str = include_str!("../../../docs/legal.md");

/// Alert kinds offered in the filter.
const KINDS: [&str; 17] = [
    "unfiled_export",
    "recipient_not_filed",
    "country_mismatch",
    "filing_expired",
    "filing_not_yet_valid",
    "filing_expiring",
    "volume_cap_exceeded",
    "outside_window",
    "service_not_filed",
    "personal_info_cleartext",
    "persons_threshold",
    "volume_surge",
    "negative_list_category",
    "opaque_tunnel",
    "line_misuse",
    "important_data_marker",
    "sensor_gap",
];

const CAUSE: &str = "cause: ";
const MEASURES: &str = "\nmeasures: ";

/// The comment stored in the incident history for an acknowledge/resolve from the console.
pub fn comment_of(cause: &str, measures: &str) -> String {
    let (c, m) = (cause.trim(), measures.trim());
    if c.is_empty() && m.is_empty() {
        return String::new();
    }
    format!("{CAUSE}{c}{MEASURES}{m}")
}

/// Cause and measures of a stored comment, if it was written by the console.
fn split_comment(s: &str) -> Option<(&str, &str)> {
    s.strip_prefix(CAUSE)?.split_once(MEASURES)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn txt(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

fn beijing(utc: &str) -> String {
    parse_rfc3339_ms(utc).map_or_else(|| utc.to_string(), format_beijing)
}

fn short_time(utc: &str) -> String {
    // 2026-03-02T17:14:07.118+08:00 -> 2026-03-02 17:14
    let b = beijing(utc);
    b.get(..16).map_or(b.clone(), |x| x.replace('T', " "))
}

fn duration_text(lang: Lang, ms: i64) -> String {
    let m = ms.unsigned_abs() / 60_000;
    let (d, h, mi) = (m / 1440, (m % 1440) / 60, m % 60);
    match lang {
        Lang::Zh if d > 0 => format!("{d} 天 {h} 小时"),
        Lang::Zh => format!("{h} 小时 {mi} 分"),
        Lang::En if d > 0 => format!("{d} d {h} h"),
        Lang::En => format!("{h} h {mi} min"),
    }
}

/// Whether the incident still runs against its deadline.
fn open(inc: &Value) -> bool {
    matches!(s(inc, "status"), "open" | "notified")
}

/// `overdue`, `soon` (due within an hour) or nothing.
fn urgency(inc: &Value, now: i64) -> Option<&'static str> {
    if !open(inc) {
        return None;
    }
    let d = parse_rfc3339_ms(s(inc, "deadline_at"))?;
    if d <= now {
        Some("overdue")
    } else if d - now <= 3_600_000 {
        Some("soon")
    } else {
        None
    }
}

fn countdown(lang: Lang, inc: &Value, now: i64) -> String {
    let Some(d) = parse_rfc3339_ms(s(inc, "deadline_at")) else {
        return String::new();
    };
    if !open(inc) {
        return String::new();
    }
    match urgency(inc, now) {
        Some("overdue") => format!(
            r#"<span class="tag overdue">{} {}</span>"#,
            lang.t("已超期", "overdue by"),
            duration_text(lang, now - d)
        ),
        Some(_) => format!(
            r#"<span class="tag soon">{} {}</span>"#,
            lang.t("一小时内到期：剩", "due within the hour:"),
            duration_text(lang, d - now)
        ),
        None => format!(
            r#"<span class="muted">{} {}</span>"#,
            lang.t("剩余", "in"),
            duration_text(lang, d - now)
        ),
    }
}

fn kind_label(lang: Lang, k: &str) -> String {
    match lang {
        Lang::Zh => format!("{}（{}）", kind_zh(k), esc(k)),
        Lang::En => esc(k),
    }
}

fn grade_label(lang: Lang, g: &str) -> String {
    match lang {
        Lang::Zh => format!("{}（{}）", grade_zh(g), esc(g)),
        Lang::En => esc(g),
    }
}

fn status_label(lang: Lang, st: &str) -> &'static str {
    match st {
        "open" => lang.t("待处置", "open"),
        "notified" => lang.t("已通知", "notified"),
        "acknowledged" => lang.t("已确认", "acknowledged"),
        "resolved" => lang.t("已解决", "resolved"),
        _ => "?",
    }
}

fn select(
    name: &str,
    label: &str,
    any: &str,
    options: &[(String, String)],
    cur: Option<&str>,
) -> String {
    let mut o = format!(r#"<option value="">{}</option>"#, esc(any));
    for (v, l) in options {
        let sel = if cur == Some(v.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(o, r#"<option value="{}"{sel}>{l}</option>"#, attr(v));
    }
    format!(
        r#"<label>{}<select name="{name}">{o}</select></label>"#,
        esc(label)
    )
}

/// Previous/next links of the incident list, keeping its filters.
fn pager(lang: Lang, q: &ListQuery, page: u32, more: bool) -> String {
    let base = {
        let mut p = Vec::new();
        for (k, v) in [
            ("status", &q.status),
            ("grade", &q.grade),
            ("kind", &q.kind),
            ("enterprise", &q.enterprise),
            ("gateway", &q.gateway),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                p.push(format!("{k}={}", qenc(v)));
            }
        }
        p.join("&")
    };
    let link = |p: u32| {
        let sep = if base.is_empty() { "" } else { "&" };
        attr(&format!("/console/incidents?{base}{sep}page={p}"))
    };
    let mut h = String::from(r#"<nav class="pager" aria-label="pages">"#);
    if page > 0 {
        let _ = write!(
            h,
            r#"<a href="{}" rel="prev">{}</a>"#,
            link(page - 1),
            lang.t("上一页", "Previous")
        );
    }
    let _ = write!(h, r#"<span>{} {}</span>"#, lang.t("第", "Page"), page + 1);
    if more {
        let _ = write!(
            h,
            r#"<a href="{}" rel="next">{}</a>"#,
            link(page + 1),
            lang.t("下一页", "Next")
        );
    }
    h.push_str("</nav>");
    h
}

/// The incident list: filters, one page sorted by deadline, overdue and due-soon marked.
pub fn incident_list(
    lang: Lang,
    token: &Token,
    q: &ListQuery,
    page: u32,
    per_page: u32,
    items: &[Value],
    now: i64,
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<h1>{}</h1><p id="new-incidents" class="notice" role="status" hidden><a href="/console/incidents">{}</a></p>"#,
        lang.t("事件（按期限排序）", "Incidents (by deadline)"),
        lang.t("有新事件：点击刷新", "New incidents: reload")
    );
    let statuses: Vec<(String, String)> = STATUSES
        .iter()
        .map(|x| ((*x).to_string(), status_label(lang, x).to_string()))
        .collect();
    let grades: Vec<(String, String)> = ["especially_serious", "serious", "major", "compliance"]
        .iter()
        .map(|g| ((*g).to_string(), grade_label(lang, g)))
        .collect();
    let kinds: Vec<(String, String)> = KINDS
        .iter()
        .map(|k| ((*k).to_string(), kind_label(lang, k)))
        .collect();
    let any = lang.t("全部", "any");
    let text_input = |name: &str, label: &str, v: &Option<String>| {
        format!(
            r#"<label>{}<input name="{name}" value="{}" size="16"></label>"#,
            esc(label),
            attr(v.as_deref().unwrap_or(""))
        )
    };
    let _ = write!(
        h,
        r#"<form class="filters" method="get" action="/console/incidents" role="search" aria-label="{}">{}{}{}{}{}<button type="submit">{}</button></form>"#,
        lang.t("筛选", "Filter"),
        select(
            "status",
            lang.t("状态", "Status"),
            any,
            &statuses,
            q.status.as_deref()
        ),
        select(
            "grade",
            lang.t("级别", "Grade"),
            any,
            &grades,
            q.grade.as_deref()
        ),
        select(
            "kind",
            lang.t("类型", "Kind"),
            any,
            &kinds,
            q.kind.as_deref()
        ),
        if token.role == Role::Enterprise {
            String::new()
        } else {
            text_input("enterprise", lang.t("企业", "Enterprise"), &q.enterprise)
        },
        if token.role == Role::Operator && token.gateways.len() <= 1 {
            String::new()
        } else {
            text_input("gateway", lang.t("网关", "Gateway"), &q.gateway)
        },
        lang.t("筛选", "Filter"),
    );
    let shown = items.len().min(per_page as usize);
    if shown == 0 {
        let _ = write!(
            h,
            "<p>{}</p>",
            lang.t("没有符合条件的事件。", "No incidents match.")
        );
    } else {
        let _ = write!(
            h,
            r#"<table><caption class="muted">{}</caption><thead><tr><th scope="col">#</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            lang.t("时间为北京时间（UTC+8）", "Times in Beijing time (UTC+8)"),
            lang.t("期限", "Deadline"),
            lang.t("级别", "Grade"),
            lang.t("状态", "Status"),
            lang.t("类型", "Kind"),
            lang.t("企业", "Enterprise"),
            lang.t("网关", "Gateway"),
            lang.t("发现时间", "Discovered"),
            lang.t("字节", "Bytes"),
            lang.t("人数", "Persons"),
        );
        for inc in &items[..shown] {
            let id = inc["id"].as_i64().unwrap_or(0);
            let class = urgency(inc, now).map_or(String::new(), |u| format!(r#" class="{u}""#));
            let _ = write!(
                h,
                r#"<tr{class}><td><a href="/console/incidents/{id}">{id}</a></td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                esc(&short_time(s(inc, "deadline_at"))),
                countdown(lang, inc, now),
                grade_label(lang, s(inc, "grade")),
                status_label(lang, s(inc, "status")),
                kind_label(lang, s(inc, "kind")),
                esc(&txt(&inc["enterprise"])),
                esc(s(inc, "gateway")),
                esc(&short_time(s(inc, "discovered_at"))),
                inc["bytes"].as_i64().unwrap_or(0),
                inc["persons"].as_i64().unwrap_or(0),
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str(&pager(lang, q, page, items.len() > per_page as usize));
    h
}

/// Legal basis of a kind from docs/legal.md: (rule, basis, what to do).
fn legal_basis(kind: &str) -> Option<(String, String, String)> {
    let needle = format!("| `{kind}` |");
    // The row of the "Alert kinds" table (other tables name kinds too).
    let line = LEGAL
        .lines()
        .find(|l| l.starts_with("| XB-") && l.contains(&needle))?;
    let cols: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
    Some((
        cols.first()?.to_string(),
        cols.get(4)?.to_string(),
        cols.get(5)?.to_string(),
    ))
}

fn kv(h: &mut String, k: &str, v: &str) {
    let _ = write!(h, "<dt>{}</dt><dd>{v}</dd>", esc(k));
}

/// One incident: facts, legal basis, countdown, actions, alerts in time order, history.
pub fn incident_detail(
    lang: Lang,
    token: &Token,
    csrf: &str,
    inc: &Value,
    alerts: &[Value],
    now: i64,
) -> String {
    let id = inc["id"].as_i64().unwrap_or(0);
    let r = &inc["report"];
    let mut h = format!(
        r#"<h1>{} #{id}: {}</h1><p><a href="/console/incidents/{id}/report">{}</a></p><dl class="kv">"#,
        lang.t("事件", "Incident"),
        kind_label(lang, s(inc, "kind")),
        lang.t("事件报告（可打印）", "Incident report (printable)"),
    );
    kv(
        &mut h,
        lang.t("状态", "Status"),
        status_label(lang, s(inc, "status")),
    );
    kv(
        &mut h,
        lang.t("级别", "Grade"),
        &grade_label(lang, s(inc, "grade")),
    );
    kv(
        &mut h,
        lang.t("处置期限（北京时间）", "Deadline (Beijing time)"),
        &format!(
            "{} {}",
            esc(&beijing(s(inc, "deadline_at"))),
            countdown(lang, inc, now)
        ),
    );
    kv(
        &mut h,
        lang.t("发现时间（北京时间）", "Discovered (Beijing time)"),
        &esc(&beijing(s(inc, "discovered_at"))),
    );
    kv(&mut h, lang.t("企业", "Enterprise"), &esc(&txt(&r["unit"])));
    kv(
        &mut h,
        lang.t("统一社会信用代码", "USCC"),
        &esc(&txt(&r["uscc"])),
    );
    kv(&mut h, lang.t("网关", "Gateway"), &esc(s(inc, "gateway")));
    kv(&mut h, lang.t("线路", "Line"), &esc(&txt(&r["line"])));
    kv(
        &mut h,
        lang.t("接收方", "Recipient"),
        &esc(s(inc, "recipient")),
    );
    kv(
        &mut h,
        lang.t("出境字节（下限）", "Export bytes (lower bound)"),
        &txt(&inc["bytes"]),
    );
    kv(
        &mut h,
        lang.t("涉及人数（估计）", "Persons (estimate)"),
        &esc(&txt(&r["impact"]["persons_estimate"])),
    );
    kv(&mut h, lang.t("摘要", "Summary"), &esc(s(inc, "summary")));
    if let Some((rule, basis, todo)) = legal_basis(s(inc, "kind")) {
        kv(
            &mut h,
            lang.t("法律依据", "Legal basis"),
            &format!(
                "{} · {} <span class=\"muted\">(docs/legal.md, {})</span>",
                esc(&rule),
                esc(&basis),
                lang.t("告警类型", "Alert kinds")
            ),
        );
        kv(&mut h, lang.t("处置建议", "What to do"), &esc(&todo));
    }
    h.push_str("</dl>");
    if token.role != Role::Enterprise && s(inc, "status") != "resolved" {
        let form = |action: &str, title: &str, button: &str| {
            format!(
                r#"<form class="act" method="post" action="/console/incidents/{id}/{action}"><h2>{}</h2><input type="hidden" name="csrf" value="{}"><label for="{action}-cause">{}</label><textarea id="{action}-cause" name="cause"></textarea><label for="{action}-measures">{}</label><textarea id="{action}-measures" name="measures"></textarea><p><button type="submit">{}</button></p></form>"#,
                esc(title),
                attr(csrf),
                lang.t("原因", "Cause"),
                lang.t("已采取的措施", "Measures taken"),
                esc(button),
            )
        };
        if open(inc) {
            h.push_str(&form(
                "acknowledge",
                lang.t("确认", "Acknowledge"),
                lang.t("确认事件", "Acknowledge"),
            ));
        }
        h.push_str(&form(
            "resolve",
            lang.t("解决", "Resolve"),
            lang.t("标记为已解决", "Resolve"),
        ));
    }
    let _ = write!(
        h,
        r#"<h2>{}</h2><table><thead><tr><th scope="col">#</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">SNI</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
        lang.t("告警（按时间）", "Alerts (in time order)"),
        lang.t("时间（北京时间）", "Time (Beijing)"),
        lang.t("规则", "Rule"),
        lang.t("严重性", "Severity"),
        lang.t("连接", "Connection"),
        lang.t("字节", "Bytes"),
        lang.t("人数", "Persons"),
        lang.t("证据（已脱敏）", "Evidence (masked)"),
    );
    for a in alerts {
        let conn = format!(
            "{} {}:{} → {}:{}",
            txt(&a["proto"]),
            txt(&a["src_ip"]),
            txt(&a["src_port"]),
            txt(&a["dest_ip"]),
            txt(&a["dest_port"])
        );
        let evidence: Vec<String> = a["evidence"]
            .as_array()
            .map(|e| e.iter().take(20).map(|x| esc(&x.to_string())).collect())
            .unwrap_or_default();
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            txt(&a["id"]),
            esc(&short_time(s(a, "timestamp"))),
            esc(s(a, "rule")),
            esc(s(a, "severity")),
            esc(&conn),
            esc(&txt(&a["sni"])),
            txt(&a["bytes"]),
            esc(&txt(&a["persons"])),
            evidence.join("<br>"),
        );
    }
    h.push_str("</tbody></table>");
    h.push_str(&history(lang, inc));
    h
}

fn history(lang: Lang, inc: &Value) -> String {
    let mut h = format!("<h2>{}</h2>", lang.t("处置记录", "History"));
    let items = inc["history"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        let _ = write!(h, "<p>{}</p>", lang.t("尚无处置记录。", "Nothing yet."));
        return h;
    }
    let _ = write!(
        h,
        r#"<table><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
        lang.t("时间（北京时间）", "Time (Beijing)"),
        lang.t("操作", "Action"),
        lang.t("操作人", "By"),
        lang.t("说明", "Comment"),
    );
    for e in &items {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{} ({})</td><td><pre>{}</pre></td></tr>",
            esc(s(e, "at_beijing")),
            esc(s(e, "action")),
            esc(s(e, "by")),
            esc(s(e, "role")),
            esc(s(e, "comment")),
        );
    }
    h.push_str("</tbody></table>");
    h
}

/// The printable CAC incident report: the report object's fields (Chinese labels from
/// `report_zh`, or English), then cause and measures from the latest console comment.
pub fn report(lang: Lang, inc: &Value) -> String {
    let id = inc["id"].as_i64().unwrap_or(0);
    let mut h = format!(
        r#"<h1>{}</h1><p class="noprint"><a href="/console/incidents/{id}">{}</a> · {}</p><dl class="kv">"#,
        lang.t(
            "数据出境安全事件报告",
            "Cross-border data security incident report"
        ),
        lang.t("返回事件", "Back to the incident"),
        lang.t(
            "用浏览器打印（Ctrl+P）生成 PDF。",
            "Print from the browser (Ctrl+P) for a PDF."
        ),
    );
    let r = &inc["report"];
    match lang {
        Lang::Zh => {
            for f in inc["report_zh"]["fields"].as_array().into_iter().flatten() {
                kv(&mut h, s(f, "label"), &esc(&txt(&f["value"])));
            }
        }
        Lang::En => {
            let join = |v: &Value, key: &str| -> String {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| if key.is_empty() { txt(x) } else { txt(&x[key]) })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|| txt(v))
            };
            for (k, v) in [
                ("Reporting unit", txt(&r["unit"])),
                ("USCC", txt(&r["uscc"])),
                ("System", txt(&r["system"])),
                ("Gateway", txt(&r["gateway"])),
                ("Line", txt(&r["line"])),
                ("Place", txt(&r["place"])),
                (
                    "Discovered (Beijing)",
                    txt(&r["time"]["discovered_at_beijing"]),
                ),
                (
                    "Last alert (Beijing)",
                    txt(&r["time"]["last_alert_at_beijing"]),
                ),
                ("Deadline (Beijing)", txt(&r["deadline_at_beijing"])),
                ("Type", txt(&r["type"])),
                ("Level", txt(&r["level"])),
                ("Export bytes", txt(&r["impact"]["export_bytes"])),
                ("Persons (estimate)", txt(&r["impact"]["persons_estimate"])),
                ("Persons basis", txt(&r["impact"]["persons_basis"])),
                ("Recipient names", join(&r["recipient"]["names"], "name")),
                (
                    "Recipient addresses",
                    join(&r["recipient"]["addresses"], ""),
                ),
                ("Recipient country", txt(&r["recipient"]["country"])),
                ("Alerts", txt(&inc["alert_count"])),
                ("Status", txt(&inc["status"])),
            ] {
                kv(&mut h, k, &esc(&v));
            }
        }
    }
    h.push_str("</dl>");
    let latest = inc["history"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find_map(|e| split_comment(s(e, "comment")));
    let _ = write!(
        h,
        "<h2>{}</h2>",
        lang.t("原因与处置措施", "Cause and measures taken")
    );
    match latest {
        Some((c, m)) => {
            h.push_str(r#"<dl class="kv">"#);
            kv(
                &mut h,
                lang.t("原因", "Cause"),
                &format!("<pre>{}</pre>", esc(c)),
            );
            kv(
                &mut h,
                lang.t("已采取的措施", "Measures taken"),
                &format!("<pre>{}</pre>", esc(m)),
            );
            h.push_str("</dl>");
        }
        None => {
            let _ = write!(
                h,
                "<p>{}</p>",
                lang.t(
                    "尚未填写（在事件页确认或解决时填写）。",
                    "Not written yet (filled when acknowledging or resolving)."
                )
            );
        }
    }
    h.push_str(&history(lang, inc));
    h
}

/// Value of a metric series `name{gateway="id"...}` summed over its other labels.
fn metric(text: &str, name: &str, gateway: &str) -> Option<f64> {
    let label = format!("gateway=\"{gateway}\"");
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !rest.starts_with('{') || !rest.contains(&label) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

/// Gateways: line, place, last seen, packets and capture drops (from this collector's metrics).
pub fn gateways(
    lang: Lang,
    cfg: &CollectorConfig,
    list: &[String],
    metrics: &str,
    now: i64,
) -> String {
    let mut h = format!(
        r#"<h1>{}</h1><table><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
        lang.t("网关", "Gateways"),
        lang.t("网关", "Gateway"),
        lang.t("线路 / 位置", "Line / place"),
        lang.t("最近上报（北京时间）", "Last seen (Beijing)"),
        lang.t("数据包", "Packets"),
        lang.t("采集丢包", "Capture drops"),
        lang.t("状态", "State"),
    );
    for g in list {
        let info = cfg.gateway_info(g);
        let seen = metric(metrics, "crossline_agent_last_seen_timestamp_seconds", g);
        #[allow(clippy::cast_possible_truncation)]
        let seen_ms = seen.map(|x| (x * 1000.0) as i64);
        let state = match seen_ms {
            None => lang.t("从未上报", "never seen"),
            Some(t) if now - t > 600_000 => {
                lang.t("超过 10 分钟未上报", "silent for over 10 minutes")
            }
            Some(_) => lang.t("在线", "reporting"),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{} / {}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(g),
            esc(info.and_then(|i| i.line.as_deref()).unwrap_or("—")),
            esc(info.and_then(|i| i.location.as_deref()).unwrap_or("—")),
            seen_ms.map_or("—".into(), |t| esc(&format_beijing(t))),
            metric(metrics, "crossline_agent_stats_packets_total", g).map_or("—".into(), |v| format!("{v}")),
            metric(metrics, "crossline_agent_stats_drops_total", g).map_or("—".into(), |v| format!("{v}")),
            state,
        );
    }
    h.push_str("</tbody></table>");
    let _ = write!(
        h,
        r#"<p class="muted">{}</p>"#,
        lang.t(
            "代理版本和本地缓存积压尚未上报给采集器，此处不显示。",
            "Agent version and spool backlog are not reported to the collector yet, so they are not shown."
        )
    );
    h
}

/// Days before `valid_until` from which a filing is shown as expiring soon (calendar days; the
/// agent's `filing_expiring` alert counts 60 working days).
const EXPIRING_DAYS: i64 = 60;

/// Enterprises with their filings (basis, reference, recipient, validity, caps) from the
/// registry, and the store's summary of each (export bytes stored in the retention period);
/// a filing is expired or expiring as of `today` (Beijing).
pub fn enterprises(
    lang: Lang,
    cfg: &CollectorConfig,
    registry: Option<&crossline_config::Registry>,
    ids: &[String],
    sums: &[Value],
    today: crossline_config::time::Date,
) -> String {
    let mut h = format!(
        "<h1>{}</h1>",
        lang.t("企业与备案", "Enterprises and filings")
    );
    if ids.is_empty() {
        let _ = write!(
            h,
            "<p>{}</p>",
            lang.t("未配置备案登记。", "No registry configured.")
        );
    }
    let today = today.days_since_epoch();
    for (id, sum) in ids.iter().zip(sums) {
        let info = cfg.registry.as_ref().and_then(|r| r.enterprise(id));
        let _ = write!(
            h,
            r#"<section aria-labelledby="e-{a}"><h2 id="e-{a}">{} <span class="muted">({})</span></h2><dl class="kv">"#,
            esc(info.map_or(id.as_str(), |i| i.name.as_str())),
            esc(id),
            a = attr(id),
        );
        if let Some(i) = info {
            kv(&mut h, lang.t("统一社会信用代码", "USCC"), &esc(&i.uscc));
            kv(
                &mut h,
                lang.t("关键信息基础设施运营者", "CIIO"),
                if i.ciio {
                    lang.t("是", "yes")
                } else {
                    lang.t("否", "no")
                },
            );
        }
        kv(
            &mut h,
            lang.t("未解决事件", "Open incidents"),
            &esc(&txt(&sum["open_incidents"])),
        );
        h.push_str("</dl>");
        let _ = write!(
            h,
            r#"<table><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            lang.t("备案场景", "Scenario"),
            lang.t("依据 / 备案编号", "Basis / filing"),
            lang.t("接收方（国家）", "Recipient (country)"),
            lang.t("有效期", "Valid"),
            lang.t("每日上限（字节）", "Daily cap (bytes)"),
            lang.t("每年人数上限", "Persons a year"),
            lang.t(
                "已存出境字节（保留期内，已备案）",
                "Export bytes stored (retention period, filed)"
            ),
        );
        let filed = |sc: &str| esc(&txt(&sum["export_bytes"][sc]["filed"]["export_bytes"]));
        match registry {
            Some(r) => {
                for sc in r.scenarios.iter().filter(|s| s.enterprise == *id) {
                    let left = sc.valid_until.days_since_epoch() - today;
                    let state = if left < 0 {
                        format!(
                            r#" <span class="tag overdue">{}</span>"#,
                            lang.t("已过期", "expired")
                        )
                    } else if left <= EXPIRING_DAYS {
                        format!(
                            r#" <span class="tag soon">{} {left} {}</span>"#,
                            lang.t("即将到期：剩", "expiring: "),
                            lang.t("天", "days left")
                        )
                    } else {
                        String::new()
                    };
                    let _ = write!(
                        h,
                        r#"<tr><td>{}</td><td>{} / {}</td><td>{} ({})</td><td>{} – {}{state}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                        esc(&sc.id),
                        esc(sc.basis.as_str()),
                        esc(&sc.filing_ref),
                        esc(&sc.recipient.name),
                        esc(&sc.recipient.country),
                        sc.valid_from,
                        sc.valid_until,
                        sc.bytes_per_day.map_or("—".into(), |b| b.to_string()),
                        sc.persons_per_year.map_or("—".into(), |b| b.to_string()),
                        filed(&sc.id),
                    );
                }
            }
            None => {
                for (sc, _) in cfg
                    .registry
                    .iter()
                    .flat_map(|r| r.scenarios.iter())
                    .filter(|(_, e)| e == id)
                {
                    let rec = cfg
                        .registry
                        .as_ref()
                        .and_then(|r| r.recipient(sc))
                        .map_or("—".to_string(), |(n, c)| format!("{n} ({c})"));
                    let _ = write!(
                        h,
                        r#"<tr><td>{}</td><td>—</td><td>{}</td><td>—</td><td>—</td><td>—</td><td class="num">{}</td></tr>"#,
                        esc(sc),
                        esc(&rec),
                        filed(sc),
                    );
                }
            }
        }
        h.push_str("</tbody></table></section>");
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_in_the_filter_is_known_and_has_a_legal_basis() {
        for k in KINDS {
            assert!(crate::incident::known_kind(k), "{k} is not an alert kind");
            let (rule, basis, todo) =
                legal_basis(k).unwrap_or_else(|| panic!("docs/legal.md has no row for {k}"));
            assert!(rule.starts_with("XB-"), "{k}: rule {rule:?}");
            assert!(!basis.is_empty() && !todo.is_empty(), "{k}");
        }
        assert!(legal_basis("no_such_kind").is_none());
    }

    /// The enterprises page judges filings on the Beijing day of the clock it is given: a
    /// filing valid until 2028-12-31 is "expiring" 9 days before (16:30 UTC on 2028-12-21 is
    /// already the 22nd in Beijing), expired the day after, and neither three years before.
    #[test]
    fn enterprises_page_judges_filings_on_the_day_passed_in() {
        let path = std::path::Path::new("examples/registry.toml");
        let text = include_str!("../../../examples/registry.toml");
        let early = crossline_config::time::Date::from_days(20_000);
        let (reg, _) = crossline_config::registry::load::parse_registry(path, text, &[], early)
            .expect("registry");
        let cfg = crossline_config::collector::parse_collector(
            "gateways = []\n",
            std::path::Path::new("c.toml"),
        )
        .expect("config");
        let ids = vec!["yanjing-pharma".to_string()];
        let sums = vec![serde_json::json!({})];
        let page = |ms: i64| {
            let today = crate::util::Clock::fixed(ms).today_beijing();
            enterprises(Lang::En, &cfg, Some(&reg), &ids, &sums, today)
        };
        let soon = page(1_861_029_000_000); // 2028-12-21T16:30:00Z
        assert!(soon.contains("SA-2026-0001"), "{soon}");
        assert!(soon.contains("expiring:  9 days left"), "{soon}");
        let after = page(1_861_920_000_000); // 2029-01-01T00:00:00Z
        assert!(
            after.contains(r#"<span class="tag overdue">expired</span>"#),
            "{after}"
        );
        let before = page(1_767_225_600_000); // 2026-01-01T00:00:00Z
        assert!(
            !before.contains("expired") && !before.contains("expiring"),
            "{before}"
        );
    }

    #[test]
    fn console_comment_round_trips_cause_and_measures() {
        let c = comment_of(" upload by a test job ", "blocked\nat the proxy");
        assert_eq!(
            split_comment(&c),
            Some(("upload by a test job", "blocked\nat the proxy"))
        );
        assert_eq!(comment_of("  ", ""), "");
        assert_eq!(split_comment("a plain API comment"), None);
    }
}
