//! A linear pre-pass over the source text, before the grammar runs. It collects
//! comments (the grammar skips them), and rejects what would make a recursive
//! descent parser misbehave: unterminated strings, nesting deeper than [`MAX_NESTING`]
//! (20,000 nested parentheses must give an error, not a stack overflow), long runs of
//! prefix operators and deep `if` chains, which the grammar parses by recursion. Long
//! chains of binary and postfix operators parse in loops; the parser limits the depth
//! of the tree they build ([`MAX_EXPRESSION_DEPTH`]).

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::FileId;
use crate::span::Span;

use super::ast::Comment;

/// Deepest allowed nesting of brackets, braces, parentheses and interpolations.
/// Real fleet files nest fewer than ten levels.
pub const MAX_NESTING: usize = 64;

/// Depth of one expression's tree. Operator chains become trees as deep as they are
/// long, and every later stage walks them recursively; real expressions are a few
/// dozen levels deep.
pub const MAX_EXPRESSION_DEPTH: usize = 1000;

/// Prefix operators in a row (`!!x`, `- -x`), which the grammar parses by recursion.
pub const MAX_PREFIX_RUN: usize = 64;

/// `if` expressions in one top-level declaration (each `else if` nests one deeper).
pub const MAX_CONDITIONALS: usize = 128;

pub struct Scan {
    pub comments: Vec<Comment>,
    /// Problems that stop parsing (the grammar is not run when this is non-empty).
    pub fatal: Vec<Diagnostic>,
}

enum Context {
    /// Code at the top level or inside a `${` interpolation that starts at `interpolation`.
    Code {
        open_braces: usize,
        interpolation: Option<usize>,
    },
    Str {
        start: usize,
    },
}

pub fn scan(file: FileId, text: &str) -> Scan {
    let bytes = text.as_bytes();
    let mut comments = Vec::new();
    let mut fatal = Vec::new();
    let mut stack = vec![Context::Code {
        open_braces: 0,
        interpolation: None,
    }];
    let mut depth = 0usize;
    // `!` and `-` since the last other token (whitespace and comments do not count).
    let mut prefix_run = 0usize;
    let mut conditionals = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let in_code = matches!(stack.last(), Some(Context::Code { .. }));
        if in_code
            && stack.len() == 1
            && (i == 0 || bytes[i - 1] == b'\n')
            && starts_declaration(&text[i..])
        {
            conditionals = 0;
        }
        if in_code {
            let comment = b == b'/' && bytes.get(i + 1) == Some(&b'/');
            let negation = b == b'!' && bytes.get(i + 1) != Some(&b'=');
            if b == b'-' || negation {
                prefix_run += 1;
            } else if !b.is_ascii_whitespace() && !comment {
                prefix_run = 0;
            }
            let limit = if prefix_run > MAX_PREFIX_RUN {
                Some("prefix operators in a row")
            } else if b == b'i'
                && bytes.get(i + 1) == Some(&b'f')
                && !bytes
                    .get(i + 2)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
            {
                conditionals += 1;
                (conditionals > MAX_CONDITIONALS).then_some("`if` expressions")
            } else {
                None
            };
            if let Some(what) = limit {
                fatal.push(too_complex(file, i, what));
                break;
            }
        }
        match stack.last_mut() {
            Some(Context::Code { open_braces, .. }) => match b {
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                    comments.push(Comment {
                        text: text[i + 2..end].trim_end_matches('\r').to_string(),
                        span: Span::new(i, end),
                    });
                    i = end;
                    continue;
                }
                b'"' => stack.push(Context::Str { start: i }),
                b'(' | b'[' | b'{' => {
                    if b == b'{' {
                        *open_braces += 1;
                    }
                    depth += 1;
                    if depth > MAX_NESTING {
                        fatal.push(too_deep(file, i));
                        break;
                    }
                }
                b')' | b']' => depth = depth.saturating_sub(1),
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if *open_braces == 0 {
                        // Closes a `${` interpolation (or is stray; the grammar reports that).
                        if stack.len() > 1 {
                            stack.pop();
                        }
                    } else {
                        *open_braces -= 1;
                    }
                }
                _ => {}
            },
            Some(Context::Str { start }) => match b {
                b'\\' => i += 1,
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    stack.push(Context::Code {
                        open_braces: 0,
                        interpolation: Some(i),
                    });
                    depth += 1;
                    if depth > MAX_NESTING {
                        fatal.push(too_deep(file, i));
                        break;
                    }
                    i += 1;
                }
                b'"' => {
                    stack.pop();
                }
                b'\n' => {
                    let start = *start;
                    stack.pop();
                    // A quote inside `${…}` starts a new string: the likelier mistake
                    // is the interpolation's missing `}`.
                    fatal.push(match stack.last() {
                        Some(Context::Code {
                            interpolation: Some(at),
                            ..
                        }) => unclosed_interpolation(file, *at),
                        _ => unterminated(file, start, i),
                    });
                }
                _ => {}
            },
            None => break,
        }
        i += 1;
    }
    if fatal.is_empty() {
        match stack.last() {
            Some(Context::Str { start }) => fatal.push(unterminated(file, *start, text.len())),
            Some(Context::Code {
                interpolation: Some(at),
                ..
            }) => fatal.push(unclosed_interpolation(file, *at)),
            _ => {}
        }
    }
    Scan { comments, fatal }
}

/// Whether a line starts a top-level declaration. `channel` and `cluster` are also
/// field names, so they count only in a declaration's shape (`channel NAME {`,
/// `cluster "ID"`), which no expression can continue into.
fn starts_declaration(line: &str) -> bool {
    if ["import ", "type ", "enum ", "let "]
        .iter()
        .any(|k| line.starts_with(k))
    {
        return true;
    }
    if let Some(rest) = line.strip_prefix("cluster ") {
        return rest.trim_start().starts_with('"');
    }
    if let Some(rest) = line.strip_prefix("channel ") {
        let rest = rest.trim_start();
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        return name_end > 0 && rest[name_end..].trim_start().starts_with('{');
    }
    false
}

fn too_complex(file: FileId, at: usize, what: &str) -> Diagnostic {
    let (message, help) = if what == "`if` expressions" {
        (
            format!("declaration has more than {MAX_CONDITIONALS} {what}"),
            "split the declaration into several `let` bindings",
        )
    } else {
        (
            format!("more than {MAX_PREFIX_RUN} {what}"),
            "`!!x` is `x` and `- -x` is `x`: drop pairs of them",
        )
    };
    Diagnostic::error(Code::E0005, message)
        .at(file, Span::new(at, at + 1), "limit reached here")
        .help(help)
}

fn unterminated(file: FileId, start: usize, end: usize) -> Diagnostic {
    Diagnostic::error(Code::E0002, "unterminated string literal")
        .at(file, Span::new(start, end), "this string has no closing `\"`")
        .help("strings end on the line they start; close it with `\"` (write `\\\"` for a quote inside)")
}

fn unclosed_interpolation(file: FileId, at: usize) -> Diagnostic {
    Diagnostic::error(Code::E0002, "unclosed `${` in a string")
        .at(
            file,
            Span::new(at, at + 2),
            "this interpolation has no closing `}`",
        )
        .help("close it with `}` before the string's closing `\"`; write `\\${` for a literal `${`")
}

fn too_deep(file: FileId, at: usize) -> Diagnostic {
    Diagnostic::error(
        Code::E0005,
        format!("expression nested more than {MAX_NESTING} levels deep"),
    )
    .at(file, Span::new(at, at + 1), "nesting limit reached here")
    .help("split the expression into `let` bindings")
}
