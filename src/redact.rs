//! What source text may show outside flotilla: quoted lines (diagnostics, hover) never
//! show the arguments of a `secret(…)` call, and control characters from source (ESC,
//! BEL, …) are printed escaped, so a file cannot drive the terminal that shows an error.

use std::borrow::Cow;
use std::ops::Range;

/// What a redacted `secret(…)` argument list is shown as.
pub const HIDDEN: &str = "…";

/// Byte ranges of `text` holding the arguments of `secret(…)` calls (between the
/// parentheses). A call left open runs to the end of the text: when in doubt, hide.
pub fn secret_arguments(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("secret") {
        let at = from + found;
        from = at + "secret".len();
        let starts_word = at == 0 || !is_ident_byte(bytes[at - 1]);
        let open = from + count_while(&bytes[from..], |b| b.is_ascii_whitespace());
        if !starts_word || bytes.get(open) != Some(&b'(') {
            continue;
        }
        let end = closing_paren(bytes, open + 1);
        ranges.push(open + 1..end);
        from = end;
    }
    ranges
}

/// `text[range]` as it may be shown: bytes inside `hidden` ranges replaced by
/// [`HIDDEN`] (once per run) and control characters escaped. `range` must lie on
/// character boundaries.
pub fn shown(text: &str, range: Range<usize>, hidden: &[Range<usize>]) -> String {
    let mut out = String::new();
    let mut in_hidden = false;
    for (offset, c) in text[range.clone()].char_indices() {
        let at = range.start + offset;
        if hidden.iter().any(|h| h.contains(&at)) {
            if !in_hidden {
                out.push_str(HIDDEN);
            }
            in_hidden = true;
            continue;
        }
        in_hidden = false;
        push_escaped(&mut out, c);
    }
    out
}

/// `text` with every control character except newline and tab escaped (`\u{1b}`).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// `text` with the arguments of every `secret(…)` call hidden and control characters
/// escaped: a line of source as it may be shown.
pub fn source_line(text: &str) -> String {
    shown(text, 0..text.len(), &secret_arguments(text))
}

fn push_escaped(out: &mut String, c: char) {
    if is_escaped(c) {
        out.extend(c.escape_unicode());
    } else {
        out.push(c);
    }
}

fn is_escaped(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn count_while(bytes: &[u8], keep: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|b| keep(**b)).count()
}

/// Offset of the `)` that closes a parenthesis opened just before `from` (parentheses
/// inside string literals do not count), or the end of the text.
fn closing_paren(bytes: &[u8], from: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = from;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_string = false,
            // Strings end at a line's end (the grammar has no multi-line strings).
            (true, b'\n') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'(') => depth += 1,
            (false, b')') if depth == 0 => return i,
            (false, b')') => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_arguments_are_hidden_in_source_lines() {
        assert_eq!(
            source_line(r#"  db = secret("db", "hunter2")  // ok"#),
            r#"  db = secret(…)  // ok"#
        );
        assert_eq!(
            source_line(r#"a = secret ( "x)", "p\")" ) + my_secret("x")"#),
            r#"a = secret (…) + my_secret("x")"#
        );
        assert_eq!(source_line(r#"x = secret("open"#), "x = secret(…");
    }

    #[test]
    fn control_characters_are_escaped_but_not_newlines_or_tabs() {
        assert_eq!(
            escape_controls("a\x1b[31mb\x07\tc\n"),
            "a\\u{1b}[31mb\\u{7}\tc\n"
        );
        assert!(matches!(escape_controls("plain"), Cow::Borrowed("plain")));
    }
}
