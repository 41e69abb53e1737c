//! Diagnostics: `FILE:LINE:COLUMN: message` errors and warnings, and the map from byte offsets
//! (the spans `toml::Spanned` records) to 1-based lines and columns.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a config file, at a 1-based line and column (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as it was named to the loader (or resolved from the referencing file).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, the value, and what was expected.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Every error found in one pass over a config file (and the files it references).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// In file order within each file; the referencing file comes first.
    pub errors: Vec<Diagnostic>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets of one file's text to lines and columns.
#[derive(Debug, Clone)]
pub struct SourceMap<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    /// Index the line starts of `text`.
    pub fn new(text: &'a str) -> SourceMap<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap { text, line_starts }
    }

    /// 1-based (line, column) of a byte offset; offsets past the end map to the end.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }
}

/// Collects errors and warnings for one file.
#[derive(Debug)]
pub struct Diagnostics<'a> {
    file: PathBuf,
    map: SourceMap<'a>,
    /// Added to every span: the offset of the fragment being validated within the file.
    base: usize,
    /// Errors, in the order they were found.
    pub errors: Vec<Diagnostic>,
    /// Warnings, in the order they were found.
    pub warnings: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    /// A collector for `file` whose text is `text`.
    pub fn new(file: &Path, text: &'a str) -> Diagnostics<'a> {
        Diagnostics {
            file: file.to_path_buf(),
            map: SourceMap::new(text),
            base: 0,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Spans passed from now on are relative to byte `base` of the file (used when a fragment
    /// of the file was deserialized on its own).
    pub fn set_base(&mut self, base: usize) {
        self.base = base;
    }

    /// A diagnostic at the start of `span`.
    pub fn at(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.map.line_column(self.base + span.start);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// 1-based line of a span start.
    pub fn line_of(&self, span: &Range<usize>) -> usize {
        self.map.line_column(self.base + span.start).0
    }

    /// Record an error.
    pub fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.at(span, message);
        self.errors.push(d);
    }

    /// Record a warning (the message is prefixed with `warning: `).
    pub fn warn(&mut self, span: &Range<usize>, message: impl AsRef<str>) {
        let d = self.at(span, format!("warning: {}", message.as_ref()));
        self.warnings.push(d);
    }

    /// An empty collector for the same file (same line map and base), for another thread.
    pub fn fork(&self) -> Diagnostics<'a> {
        Diagnostics {
            file: self.file.clone(),
            map: self.map.clone(),
            base: self.base,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Take over the errors and warnings of a fork.
    pub fn absorb(&mut self, other: Diagnostics<'a>) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }

    /// Record a TOML syntax or structure error from the deserializer.
    pub fn toml_error(&mut self, e: &toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim_end().replace('\n', " ");
        self.error(&span, message);
    }

    /// Sort errors and warnings by position (they are found per rule, not per line).
    pub fn sort(&mut self) {
        let key = |d: &Diagnostic| (d.line, d.column);
        self.errors.sort_by_key(key);
        self.warnings.sort_by_key(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let text = "a = 1\nbé = \"x\"\n\nc";
        let m = SourceMap::new(text);
        assert_eq!(m.line_column(0), (1, 1));
        assert_eq!(m.line_column(4), (1, 5));
        assert_eq!(m.line_column(6), (2, 1));
        // 'é' is two bytes, one column.
        let quote = text.find('"').expect("quote");
        assert_eq!(m.line_column(quote), (2, 6));
        assert_eq!(m.line_column(text.len() - 1), (4, 1));
        assert_eq!(m.line_column(10_000), (4, 2));
    }

    #[test]
    fn display() {
        let e = ConfigError {
            errors: vec![
                Diagnostic {
                    file: "a.toml".into(),
                    line: 1,
                    column: 2,
                    message: "one".into(),
                },
                Diagnostic {
                    file: "b.toml".into(),
                    line: 3,
                    column: 4,
                    message: "two".into(),
                },
            ],
        };
        assert_eq!(e.to_string(), "a.toml:1:2: one\nb.toml:3:4: two");
    }
}
