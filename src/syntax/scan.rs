//! A linear pre-pass over the source text, before the grammar runs. It collects
//! comments (the grammar skips them), and rejects what would make a recursive
//! descent parser misbehave: unterminated strings and nesting deeper than
//! [`MAX_NESTING`] (20,000 nested parentheses must give an error, not a stack overflow).

use crate::diagnostic::Diagnostic;
use crate::source::FileId;
use crate::span::Span;

use super::ast::Comment;

/// Deepest allowed nesting of brackets, braces, parentheses and interpolations.
/// Real fleet files nest fewer than ten levels.
pub const MAX_NESTING: usize = 64;

/// Operators in one top-level declaration. Operator chains become trees as deep as
/// they are long, and every later stage walks them recursively; real declarations
/// have a few dozen.
pub const MAX_OPERATORS: usize = 1000;

/// `if` expressions in one top-level declaration (each `else if` nests one deeper).
pub const MAX_CONDITIONALS: usize = 128;

pub struct Scan {
    pub comments: Vec<Comment>,
    /// Problems that stop parsing (the grammar is not run when this is non-empty).
    pub fatal: Vec<Diagnostic>,
}

enum Context {
    Code { open_braces: usize },
    Str { start: usize },
}

pub fn scan(file: FileId, text: &str) -> Scan {
    let bytes = text.as_bytes();
    let mut comments = Vec::new();
    let mut fatal = Vec::new();
    let mut stack = vec![Context::Code { open_braces: 0 }];
    let mut depth = 0usize;
    let mut operators = 0usize;
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
            operators = 0;
            conditionals = 0;
        }
        if in_code {
            let comment = b == b'/' && bytes.get(i + 1) == Some(&b'/');
            let limit = if b"+-*/%<>!&|?".contains(&b) && !comment {
                operators += 1;
                (operators > MAX_OPERATORS).then_some("operators")
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
            Some(Context::Code { open_braces }) => match b {
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
                    stack.push(Context::Code { open_braces: 0 });
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
                    fatal.push(unterminated(file, *start, i));
                    stack.pop();
                }
                _ => {}
            },
            None => break,
        }
        i += 1;
    }
    if let Some(Context::Str { start }) = stack.last()
        && fatal.is_empty()
    {
        fatal.push(unterminated(file, *start, text.len()));
    }
    Scan { comments, fatal }
}

fn starts_declaration(line: &str) -> bool {
    ["import ", "type ", "enum ", "let ", "channel ", "cluster "]
        .iter()
        .any(|k| line.starts_with(k))
}

fn too_complex(file: FileId, at: usize, what: &str) -> Diagnostic {
    let limit = if what == "operators" {
        MAX_OPERATORS
    } else {
        MAX_CONDITIONALS
    };
    Diagnostic::error("E0005", format!("declaration has more than {limit} {what}"))
        .at(file, Span::new(at, at + 1), "limit reached here")
        .help("split the declaration into several `let` bindings")
}

fn unterminated(file: FileId, start: usize, end: usize) -> Diagnostic {
    Diagnostic::error("E0002", "unterminated string literal")
        .at(file, Span::new(start, end), "this string has no closing `\"`")
        .help("strings end on the line they start; close it with `\"` (write `\\\"` for a quote inside)")
}

fn too_deep(file: FileId, at: usize) -> Diagnostic {
    Diagnostic::error(
        "E0005",
        format!("expression nested more than {MAX_NESTING} levels deep"),
    )
    .at(file, Span::new(at, at + 1), "nesting limit reached here")
    .help("split the expression into `let` bindings")
}
