//! Diagnostics: one data type for every phase's errors, rendered rustc-style for
//! terminals and snapshots, and as JSON objects for editors and CI.

use std::fmt::Write as _;

use serde::Serialize;
use unicode_width::UnicodeWidthStr;

pub use crate::codes::Code;
use crate::redact::{self, escape_controls};
use crate::source::{FileId, SourceMap};
use crate::span::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A place in a file with a short message under it.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub file: FileId,
    pub span: Span,
    pub message: String,
}

impl Label {
    pub fn new(file: FileId, span: Span, message: impl Into<String>) -> Label {
        Label {
            file,
            span,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable code, `E0001`…; see `flotilla explain CODE`.
    pub code: Code,
    pub message: String,
    /// Where the problem is. `None` only for errors about the command line itself.
    pub primary: Option<Label>,
    /// Related places (the declaration that requires a field, the other duplicate, …).
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, file: FileId, span: Span, label: impl Into<String>) -> Diagnostic {
        self.primary = Some(Label::new(file, span, label));
        self
    }

    pub fn also(mut self, file: FileId, span: Span, label: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label::new(file, span, label));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sort diagnostics by file and position and drop exact duplicates, so output is stable.
pub fn sort_diagnostics(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by_key(|d| {
        (
            d.primary
                .as_ref()
                .map(|l| (l.file, l.span.start, l.span.end)),
            d.code,
            d.message.clone(),
        )
    });
    diagnostics.dedup();
}

/// Render diagnostics like rustc. `color` adds ANSI escapes for terminals.
pub fn render(sources: &SourceMap, diagnostic: &Diagnostic, color: bool) -> String {
    let paint = Paint { on: color };
    let mut out = String::new();
    let (word, tone) = match diagnostic.severity {
        Severity::Error => ("error", RED),
        Severity::Warning => ("warning", YELLOW),
    };
    let _ = writeln!(
        out,
        "{}{}",
        paint.wrap(&format!("{word}[{}]", diagnostic.code), tone),
        paint.wrap(&format!(": {}", escape_controls(&diagnostic.message)), BOLD)
    );
    let labels: Vec<(&Label, bool)> = diagnostic
        .primary
        .iter()
        .map(|l| (l, true))
        .chain(diagnostic.secondary.iter().map(|l| (l, false)))
        .collect();
    let gutter = labels
        .iter()
        .map(|(l, _)| {
            let file = sources.get(l.file);
            let line = file.lines.line_of(l.span.start as usize) + 1;
            line.to_string().len()
        })
        .max()
        .unwrap_or(1);
    let pad = " ".repeat(gutter);
    for (label, primary) in &labels {
        let file = sources.get(label.file);
        let start = file.lines.position(&file.text, label.span.start as usize);
        let arrow = if *primary { "-->" } else { ":::" };
        let _ = writeln!(
            out,
            "{pad}{} {}:{}:{}",
            paint.wrap(arrow, BLUE),
            escape_controls(&file.name),
            start.line,
            start.column
        );
        let _ = writeln!(out, "{pad} {}", paint.wrap("|", BLUE));
        let line_no = start.line as usize - 1;
        let line_start = file.lines.line_start(line_no);
        let line_text = file.text[line_start..]
            .split('\n')
            .next()
            .unwrap_or("")
            .trim_end_matches('\r');
        // Underline the part of the span on its first line (at least one caret).
        let line_end = line_start + line_text.len();
        let from = floor_boundary(
            &file.text,
            (label.span.start as usize).clamp(line_start, line_end),
        );
        let to = ceil_boundary(&file.text, (label.span.end as usize).clamp(from, line_end));
        // A very long line (generated or minified source) is shown around the span only.
        let (window_start, to, window_end) = if line_text.chars().count() <= MAX_LINE {
            (line_start, to, line_end)
        } else {
            let to = from + char_prefix(&file.text[from..to], 2 * LINE_CONTEXT);
            let before = &file.text[line_start..from];
            let skipped = before.chars().count().saturating_sub(LINE_CONTEXT);
            let start = line_start + before.char_indices().nth(skipped).map_or(0, |(i, _)| i);
            (
                start,
                to,
                to + char_prefix(&file.text[to..line_end], LINE_CONTEXT),
            )
        };
        let lead = if window_start > line_start { "…" } else { "" };
        let tail = if window_end < line_end { "…" } else { "" };
        // Shown in three parts so the underline stays under its span after secrets are
        // hidden and control characters escaped.
        let secrets = redact::secret_arguments(&file.text);
        let [before, spanned, after] = [window_start..from, from..to, to..window_end]
            .map(|part| redact::shown(&file.text, part, &secrets));
        let _ = writeln!(
            out,
            "{} {} {lead}{}{tail}",
            paint.wrap(&format!("{:>gutter$}", start.line), BLUE),
            paint.wrap("|", BLUE),
            format!("{before}{spanned}{after}").replace('\t', "    ")
        );
        let indent = display_width(lead) + display_width(&before);
        let width = display_width(&spanned).max(1);
        let mark = if *primary { "^" } else { "-" };
        let underline = format!(
            "{}{}",
            mark.repeat(width),
            prefixed(" ", &escape_controls(&label.message))
        );
        let _ = writeln!(
            out,
            "{pad} {} {}{}",
            paint.wrap("|", BLUE),
            " ".repeat(indent),
            paint.wrap(&underline, if *primary { tone } else { BLUE })
        );
    }
    if let Some(help) = &diagnostic.help {
        if !labels.is_empty() {
            let _ = writeln!(out, "{pad} {}", paint.wrap("|", BLUE));
        }
        let _ = writeln!(
            out,
            "{pad} {} help: {}",
            paint.wrap("=", BLUE),
            escape_controls(help)
        );
    }
    out
}

/// Render many diagnostics followed by a one-line summary.
pub fn render_all(sources: &SourceMap, diagnostics: &[Diagnostic], color: bool) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&render(sources, d, color));
        out.push('\n');
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if errors > 0 || warnings > 0 {
        let _ = writeln!(
            out,
            "{} error{}, {} warning{}",
            errors,
            if errors == 1 { "" } else { "s" },
            warnings,
            if warnings == 1 { "" } else { "s" }
        );
    }
    out
}

/// The machine-readable form of one diagnostic (`--format json`).
#[derive(Serialize)]
pub struct JsonDiagnostic {
    pub file: Option<String>,
    pub start_line: u32,
    pub start_column: u32,
    pub end_line: u32,
    pub end_column: u32,
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub help: Option<String>,
}

pub fn to_json(sources: &SourceMap, diagnostic: &Diagnostic) -> JsonDiagnostic {
    let (file, start, end) = match &diagnostic.primary {
        Some(label) => {
            let f = sources.get(label.file);
            let start = label.span.start as usize;
            // A span that ends inside a character (the invalid byte of a file that is
            // not UTF-8, shown as U+FFFD) covers that character; a line's `\r` is not
            // part of what is underlined.
            let mut end = ceil_boundary(&f.text, (label.span.end as usize).max(start));
            while end > start && f.text.as_bytes().get(end - 1) == Some(&b'\r') {
                end -= 1;
            }
            let start = f.lines.position(&f.text, start);
            let end = f.lines.position(&f.text, end);
            (
                Some(f.name.clone()),
                (start.line, start.column),
                (end.line, end.column),
            )
        }
        None => (None, (0, 0), (0, 0)),
    };
    JsonDiagnostic {
        file,
        start_line: start.0,
        start_column: start.1,
        end_line: end.0,
        end_column: end.1,
        severity: diagnostic.severity,
        code: diagnostic.code,
        message: diagnostic.message.clone(),
        help: diagnostic.help.clone(),
    }
}

fn prefixed(prefix: &str, message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!("{prefix}{message}")
    }
}

/// Terminal columns `text` takes: wide characters (emoji, CJK) count two, combining
/// marks none, and a tab four (the rendered line has its tabs expanded to four spaces).
/// Source lines up to this many characters are shown whole.
const MAX_LINE: usize = 400;

/// Characters of a longer line shown on each side of a diagnostic's span.
const LINE_CONTEXT: usize = 100;

/// Byte length of the first `n` characters of `text`.
fn char_prefix(text: &str, n: usize) -> usize {
    text.char_indices().nth(n).map_or(text.len(), |(i, _)| i)
}

fn display_width(text: &str) -> usize {
    text.split('\t').map(UnicodeWidthStr::width).sum::<usize>() + 4 * text.matches('\t').count()
}

/// The largest character boundary at or before `offset`.
fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut i = offset.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest character boundary at or after `offset`.
fn ceil_boundary(text: &str, offset: usize) -> usize {
    let mut i = offset.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[1;33m";
const BLUE: &str = "\x1b[1;34m";
const BOLD: &str = "\x1b[1m";

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, text: &str, style: &str) -> String {
        if self.on {
            format!("{style}{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The "did you mean `NAME`?" hint for `wrong`, when one of `candidates` is close: the
/// one wording of every suggestion flotilla makes.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    suggest(wrong, candidates).map(|near| format!("did you mean `{near}`?"))
}

/// "did you mean" candidate: the closest name within a small edit distance.
pub fn suggest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (wrong.chars().count() / 3).max(1);
    let candidates: Vec<&str> = candidates.into_iter().collect();
    // An abbreviation (`prod` for `production`) is a likelier intent than an edit.
    if wrong.len() >= 3 {
        let mut prefixed = candidates
            .iter()
            .filter(|c| c.starts_with(wrong) && **c != wrong);
        if let (Some(only), None) = (prefixed.next(), prefixed.next()) {
            return Some(only);
        }
    }
    candidates
        .into_iter()
        .filter(|c| *c != wrong)
        .map(|c| (edit_distance(wrong, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_transpositions_and_typos() {
        let fields = ["min_size", "max_size", "instance_types"];
        assert_eq!(suggest("max_szie", fields), Some("max_size"));
        assert_eq!(suggest("instance_type", fields), Some("instance_types"));
        assert_eq!(suggest("labels", fields), None);
        assert_eq!(
            did_you_mean("min_szie", fields).as_deref(),
            Some("did you mean `min_size`?")
        );
        assert_eq!(did_you_mean("labels", fields), None);
    }
}
