//! Document formatting: `flotilla fmt`'s formatter, sent as one edit over the lines
//! that differ (so the editor keeps the cursor and folds elsewhere).

use lsp_types::{Position, Range, TextEdit};

use crate::format::format_source;
use crate::source::FileId;

/// The edits that format `text`; `None` when it has syntax errors (the diagnostics
/// already show them, and a partial tree would drop the broken declarations).
pub(crate) fn format_edits(text: &str) -> Option<Vec<TextEdit>> {
    let formatted = format_source(FileId(0), text).ok()?;
    if formatted == text {
        return Some(Vec::new());
    }
    let old: Vec<&str> = text.split_inclusive('\n').collect();
    let new: Vec<&str> = formatted.split_inclusive('\n').collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let end = if suffix == 0 {
        end_of(text)
    } else {
        Position::new((old.len() - suffix) as u32, 0)
    };
    Some(vec![TextEdit {
        range: Range::new(Position::new(prefix as u32, 0), end),
        new_text: new[prefix..new.len() - suffix].concat(),
    }])
}

/// The position just past the last character.
fn end_of(text: &str) -> Position {
    let line = text.matches('\n').count();
    let last = text.rsplit('\n').next().unwrap_or("");
    Position::new(line as u32, last.encode_utf16().count() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, edits: &[TextEdit]) -> String {
        let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
        for edit in edits.iter().rev() {
            let start = edit.range.start.line as usize;
            let end = (edit.range.end.line as usize + usize::from(edit.range.end.character > 0))
                .min(lines.len());
            lines.splice(start..end, [edit.new_text.clone()]);
        }
        lines.concat()
    }

    #[test]
    fn edits_reproduce_the_formatter_output() {
        for text in [
            "let a   =  1\nlet b = 2\n",
            "let a = 1\nlet b=2",
            "let a = 1\n\n\n\nlet b = 2\nlet  c = 3\n",
            "let a = \"é𝄞\"  ",
        ] {
            let Some(edits) = format_edits(text) else {
                continue;
            };
            let formatted = format_source(FileId(0), text).unwrap();
            assert_eq!(apply(text, &edits), formatted, "{text:?}");
        }
    }

    #[test]
    fn formatted_text_needs_no_edits_and_broken_text_gets_none() {
        let formatted = format_source(FileId(0), "let a   = 1\n").unwrap();
        assert_eq!(format_edits(&formatted), Some(Vec::new()));
        assert_eq!(format_edits("let a = (\n"), None);
    }
}
