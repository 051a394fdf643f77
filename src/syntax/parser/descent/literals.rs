//! Numbers and strings, read as the grammar's atomic rules read them.

use super::super::{number_value, unescape};
use super::Descent;
use crate::diagnostic::Diagnostic;
use crate::syntax::ast::*;

impl Descent<'_> {
    /// `number`: digits (single `_` between them), then a fraction with an optional
    /// exponent and no letter after it, or an optional fraction and a unit; its value
    /// as `Builder` reads it, declining on a problem (too large, unknown unit).
    pub(super) fn number(&self, at: usize) -> Option<(ExprKind, usize)> {
        let end = self.number_end(at)?;
        let mut problems: Vec<Diagnostic> = Vec::new();
        let kind = number_value(
            self.file,
            self.span(at, end),
            self.slice(at, end),
            &mut problems,
        );
        problems.is_empty().then_some((kind, end))
    }

    fn number_end(&self, at: usize) -> Option<usize> {
        let whole = self.digits(at)?;
        let fraction = match self.byte(whole) {
            b'.' => self.digits(whole + 1),
            _ => None,
        };
        // A float: a fraction, an optional exponent, and no letter after them.
        if let Some(fraction) = fraction {
            let mut end = fraction;
            if matches!(self.byte(fraction), b'e' | b'E') {
                let sign = usize::from(matches!(self.byte(fraction + 1), b'+' | b'-'));
                if let Some(exponent) = self.digits(fraction + 1 + sign) {
                    end = exponent;
                }
            }
            if !self.byte(end).is_ascii_alphabetic() {
                return Some(end);
            }
        }
        // Else a unit after the digits and the optional fraction, or the digits alone.
        let before_unit = fraction.unwrap_or(whole);
        if self.byte(before_unit).is_ascii_alphabetic() {
            let mut end = before_unit + 1;
            while self.byte(end).is_ascii_alphanumeric() {
                end += 1;
            }
            return Some(end);
        }
        Some(whole)
    }

    /// `digits`: `ASCII_DIGIT ~ (ASCII_DIGIT | "_" ~ ASCII_DIGIT)*`.
    fn digits(&self, at: usize) -> Option<usize> {
        if !self.byte(at).is_ascii_digit() {
            return None;
        }
        let mut end = at + 1;
        loop {
            if self.byte(end).is_ascii_digit() {
                end += 1;
            } else if self.byte(end) == b'_' && self.byte(end + 1).is_ascii_digit() {
                end += 2;
            } else {
                return Some(end);
            }
        }
    }

    /// `string`: text, escapes and `${expr}` interpolations between quotes.
    pub(super) fn string(&self, at: usize) -> Option<(Expr, usize)> {
        let (parts, end) = self.string_parts(at, true)?;
        let span = self.span(at, end);
        Some((
            Expr {
                kind: ExprKind::Str(parts),
                span,
            },
            end,
        ))
    }

    /// `plain_string`: a string without interpolations.
    pub(super) fn plain_string(&self, at: usize) -> Option<(PlainString, usize)> {
        let (parts, end) = self.string_parts(at, false)?;
        let value = match parts.into_iter().next() {
            Some(StrPart::Text(text)) => text,
            Some(StrPart::Interpolation(_)) => return None,
            None => String::new(),
        };
        let span = self.span(at, end);
        Some((PlainString { value, span }, end))
    }

    /// The parts of the string that starts at `at` (text and escapes merged, as
    /// `Builder` merges them), and where it ends. A bad escape, or an interpolation
    /// where none may be, declines.
    fn string_parts(&self, at: usize, interpolations: bool) -> Option<(Vec<StrPart>, usize)> {
        let mut next = self.token(at, b'"')?;
        let mut parts = Vec::new();
        let mut text = String::new();
        loop {
            match self.byte(next) {
                b'"' => break,
                b'\\' => {
                    let end = self.escape_end(next)?;
                    let escape = self.slice(next, end);
                    text.push(unescape(self.file, self.span(next, end), escape).ok()?);
                    next = end;
                }
                b'$' if self.byte(next + 1) == b'{' => {
                    if !interpolations {
                        return None;
                    }
                    // `interpolation` is not atomic: blanks are skipped inside it.
                    let (expr, end) = self.expr(self.skip(next + 2))?;
                    next = self.token(self.skip(end), b'}')?;
                    if !text.is_empty() {
                        parts.push(StrPart::Text(std::mem::take(&mut text)));
                    }
                    parts.push(StrPart::Interpolation(expr));
                }
                // A newline ends no string (the scanner reports it), nor does the end.
                b'\n' => return None,
                _ if next >= self.bytes.len() => return None,
                _ => {
                    let end = self.text_end(next);
                    // Most strings are one run of text: a string of just its size.
                    if text.is_empty() {
                        text = self.slice(next, end).to_string();
                    } else {
                        text.push_str(self.slice(next, end));
                    }
                    next = end;
                }
            }
        }
        if !text.is_empty() {
            parts.push(StrPart::Text(text));
        }
        parts.shrink_to_fit();
        Some((parts, next + 1))
    }

    /// `text`: from `at` to the next `"`, `\`, `${` or newline (or the end).
    fn text_end(&self, at: usize) -> usize {
        let mut end = at + 1;
        while end < self.bytes.len() {
            match self.byte(end) {
                b'"' | b'\\' | b'\n' => break,
                b'$' if self.byte(end + 1) == b'{' => break,
                _ => end += 1,
            }
        }
        end
    }

    /// `escape`: `"\\" ~ ("u{" ~ ASCII_HEX_DIGIT{1,6} ~ "}" | ANY)`, where the escapes
    /// this parser keeps are ASCII (any other is a problem, and declines).
    fn escape_end(&self, at: usize) -> Option<usize> {
        if self.byte(at + 1) == b'u' && self.byte(at + 2) == b'{' {
            let digits = (0..6)
                .take_while(|i| self.byte(at + 3 + i).is_ascii_hexdigit())
                .count();
            if digits > 0 && self.byte(at + 3 + digits) == b'}' {
                return Some(at + 4 + digits);
            }
        }
        self.byte(at + 1).is_ascii().then_some(at + 2)
    }
}
