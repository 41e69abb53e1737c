//! Field checks shared by the registry, agent and collector loaders: each takes a spanned raw
//! value, records any problem in [`Diagnostics`] (naming the key, the value and what was
//! expected) and returns the checked value.

use crate::diag::{ConfigError, Diagnostic, Diagnostics};
use crate::parse::{parse_byte_size, parse_duration, parse_ip_net};
use crate::raw::{S, V};
use crate::registry::IpNet;
use crate::time::Date;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::{Spanned, Value};

pub(crate) fn read_file(path: &Path) -> Result<String, ConfigError> {
    crate::read::read_config_text(path).map_err(|e| ConfigError {
        errors: vec![Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {}", e.reason()),
        }],
    })
}

pub(crate) fn span<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

/// A non-empty string without control characters; the error names the key.
pub(crate) fn check_text(d: &mut Diagnostics, key: &str, s: &S) -> bool {
    let v = s.get_ref();
    if v.trim().is_empty() {
        d.error(
            &span(s),
            format!("{key}: empty value, expected a non-empty string"),
        );
        return false;
    }
    if v.chars().any(char::is_control) {
        d.error(
            &span(s),
            format!("{key}: {v:?} contains a control character, expected printable text"),
        );
        return false;
    }
    true
}

/// An id: non-empty, no white space.
pub(crate) fn check_id(d: &mut Diagnostics, key: &str, s: &S) -> bool {
    if !check_text(d, key, s) {
        return false;
    }
    let v = s.get_ref();
    if v.chars().any(char::is_whitespace) {
        d.error(
            &span(s),
            format!("{key}: {v:?} contains white space, expected an id without spaces"),
        );
        return false;
    }
    true
}

/// `"; did you mean X?"` when `value` differs from one of `options` only in case or in using
/// `-` or a space instead of `_`; empty otherwise.
pub(crate) fn did_you_mean(value: &str, options: &[&str]) -> String {
    let normal: String = value
        .trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    options
        .iter()
        .find(|o| **o == normal)
        .map_or_else(String::new, |o| format!("; did you mean {o:?}?"))
}

pub(crate) fn parse_date(d: &mut Diagnostics, key: &str, v: &V) -> Option<Date> {
    let expected = "expected a TOML date such as 2026-01-01 (without quotes)";
    match v.get_ref() {
        Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
            let date = dt.date?;
            let parsed = Date::new(i32::from(date.year), date.month, date.day);
            if parsed.is_none() {
                d.error(
                    &span(v),
                    format!("{key}: {dt} is not a calendar date, {expected}"),
                );
            }
            parsed
        }
        Value::String(s) => {
            d.error(&span(v), format!("{key}: {s:?} is a string, {expected}"));
            None
        }
        other => {
            d.error(
                &span(v),
                format!("{key}: {other} is not a date, {expected}"),
            );
            None
        }
    }
}

pub(crate) fn parse_nets(d: &mut Diagnostics, key: &str, list: &Spanned<Vec<S>>) -> Vec<IpNet> {
    let mut out = Vec::with_capacity(list.get_ref().len());
    for item in list.get_ref() {
        match parse_ip_net(item.get_ref()) {
            Ok(n) => out.push(n),
            Err(e) => d.error(&span(item), format!("{key}: {e}")),
        }
    }
    out
}

pub(crate) fn byte_size(d: &mut Diagnostics, key: &str, v: &V) -> Option<u64> {
    match v.get_ref() {
        Value::Integer(n) if *n >= 0 => Some(*n as u64),
        Value::Integer(n) => {
            d.error(
                &span(v),
                format!("{key}: {n} is negative, expected a byte size"),
            );
            None
        }
        Value::String(s) => match parse_byte_size(s) {
            Ok(n) => Some(n),
            Err(e) => {
                d.error(&span(v), format!("{key}: {e}"));
                None
            }
        },
        other => {
            d.error(
                &span(v),
                format!("{key}: {other} is not a byte size, expected a string such as \"20 GiB\" or an integer"),
            );
            None
        }
    }
}

pub(crate) fn duration(d: &mut Diagnostics, key: &str, v: &V) -> Option<Duration> {
    match v.get_ref() {
        Value::String(s) => match parse_duration(s) {
            Ok(t) => Some(t),
            Err(e) => {
                d.error(&span(v), format!("{key}: {e}"));
                None
            }
        },
        other => {
            d.error(
                &span(v),
                format!("{key}: {other} is not a duration, expected a string such as \"5s\", \"5m\" or \"1h\""),
            );
            None
        }
    }
}

/// An integer in `min..=max`.
pub(crate) fn int_in(
    d: &mut Diagnostics,
    key: &str,
    v: &Spanned<i64>,
    min: i64,
    max: i64,
) -> Option<u64> {
    let n = *v.get_ref();
    if n < min || n > max {
        d.error(
            &span(v),
            format!("{key}: {n} is out of range, expected {min}..={max}"),
        );
        return None;
    }
    Some(n as u64)
}

/// The sections of a TOML file (the top-level keys, then every `[table]` / `[[array]]` header
/// to the next), each as a copy of the whole text with the other sections blanked out (newlines
/// kept), so that spans found in a section are file positions. Used after a file failed to
/// deserialize as a whole, so that a mistake in one section does not hide the others. `None`
/// when the text is not TOML, or a cut fell inside a multi-line string or array.
pub(crate) fn blanked_sections(text: &str) -> Option<Vec<String>> {
    toml::from_str::<toml::Table>(text).ok()?;
    let mut cuts = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && line.trim_start_matches([' ', '\t']).starts_with('[') {
            cuts.push(offset);
        }
        offset += line.len();
    }
    let mut out = Vec::with_capacity(cuts.len());
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).copied().unwrap_or(text.len());
        let blanked: Vec<u8> = text
            .bytes()
            .enumerate()
            .map(|(at, b)| {
                if (start..end).contains(&at) || b == b'\n' {
                    b
                } else {
                    b' '
                }
            })
            .collect();
        let section = String::from_utf8(blanked).ok()?;
        toml::from_str::<toml::Table>(&section).ok()?;
        out.push(section);
    }
    Some(out)
}
