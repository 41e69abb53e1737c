//! HTML building blocks: one escaping function, the language switch and the page frame.
//!
//! Templates are plain `format!` strings: every value that comes from data passes through
//! [`esc`] (or [`attr`], the same function); constant markup is written here. This keeps the
//! console free of a template engine and its build time, and keeps the one rule reviewable.

use crossline_config::collector::{Role, Token};

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// [`esc`] for attribute values (same rules; named for reading).
pub fn attr(s: &str) -> String {
    esc(s)
}

/// Percent-encode a query value.
pub fn qenc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The page language: Chinese by default, English by `?lang=en` or the `crossline_lang` cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 中文.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The text in this language.
    pub fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
    /// `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
    /// From a `lang` parameter or cookie value.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

/// The signed-in user as shown in the header.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// Token.
    pub token: &'a Token,
    /// CSRF token of the session (for the sign-out form).
    pub csrf: &'a str,
}

/// Role name in the page language.
pub fn role_name(lang: Lang, role: Role) -> &'static str {
    match role {
        Role::Regulator => lang.t("监管部门", "regulator"),
        Role::Operator => lang.t("网关运营方", "operator"),
        Role::Enterprise => lang.t("企业", "enterprise"),
    }
}

/// A whole page. `path_q`: the current path and query without `lang` (for the switch link).
pub fn frame(
    lang: Lang,
    title: &str,
    who: Option<Who<'_>>,
    path_q: &str,
    body_attrs: &str,
    content: &str,
) -> String {
    let sep = if path_q.contains('?') { '&' } else { '?' };
    let (other, other_name) = match lang {
        Lang::Zh => ("en", "English"),
        Lang::En => ("zh", "中文"),
    };
    let switch = format!(
        r#"<a href="{}{sep}lang={other}" lang="{}" hreflang="{}">{other_name}</a>"#,
        attr(path_q),
        if other == "en" { "en" } else { "zh-CN" },
        if other == "en" { "en" } else { "zh-CN" },
    );
    let nav = match who {
        None => String::new(),
        Some(w) => {
            let mut items = vec![format!(
                r#"<li><a href="/console/incidents">{}</a></li>"#,
                lang.t("事件", "Incidents")
            )];
            if w.token.role != Role::Enterprise {
                items.push(format!(
                    r#"<li><a href="/console/gateways">{}</a></li>"#,
                    lang.t("网关", "Gateways")
                ));
            }
            if w.token.role != Role::Operator {
                items.push(format!(
                    r#"<li><a href="/console/enterprises">{}</a></li>"#,
                    lang.t("企业与备案", "Enterprises and filings")
                ));
            }
            format!(
                r#"<nav aria-label="{}"><ul>{}</ul></nav><div class="who"><span>{} · {}</span>{switch}<form method="post" action="/console/logout"><input type="hidden" name="csrf" value="{}"><button class="link" type="submit">{}</button></form></div>"#,
                lang.t("主导航", "Main"),
                items.concat(),
                esc(&w.token.name),
                role_name(lang, w.token.role),
                attr(w.csrf),
                lang.t("退出", "Sign out"),
            )
        }
    };
    let nav = if who.is_none() {
        format!(r#"<div class="who">{switch}</div>"#)
    } else {
        nav
    };
    format!(
        r##"<!DOCTYPE html>
<html lang="{code}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · crossline</title><link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="/console/static/console.css"><script src="/console/static/console.js" defer></script></head>
<body{body_attrs}><a class="skip" href="#main">{skip}</a><header class="top"><a class="brand" href="/console/">crossline {brand}</a>{nav}</header>
<main id="main">{content}</main></body></html>
"##,
        code = lang.code(),
        title = esc(title),
        skip = lang.t("跳到正文", "Skip to content"),
        brand = lang.t("数据出境监测", "cross-border export monitor"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            esc(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(esc("a\u{0}b"), "a\u{fffd}b");
        assert_eq!(qenc("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
