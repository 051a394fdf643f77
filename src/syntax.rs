//! Source text → syntax tree. Comments are collected by a pre-scan, the grammar
//! (`grammar/flotilla.pest`) does the rest (a hand-written parser builds the same
//! tree faster where it is sure to); doc comments attach to declarations.

pub mod ast;
mod parser;
mod reparse;
mod scan;

use crate::diagnostic::Diagnostic;
use crate::source::FileId;
use ast::{Comment, Item, Member, Module};

#[cfg(fuzzing)]
pub use parser::compare_with_pest;
pub use parser::{DURATION_UNITS, QUANTITY_UNITS};
pub use reparse::Reparser;
pub use scan::{MAX_CONDITIONALS, MAX_EXPRESSION_DEPTH, MAX_NESTING, MAX_PREFIX_RUN};

/// Parse one file. Always returns a module (possibly partial) and the problems found.
/// A syntax error in one declaration does not hide errors in the following ones.
pub fn parse(file: FileId, text: &str) -> (Module, Vec<Diagnostic>) {
    // The grammar is recursive descent: within the scanner's limits it needs a few
    // megabytes of stack in debug builds, more than a test thread has.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("flotilla-parse".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, || parse_here(file, text))
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .unwrap_or_else(|_| parse_here(file, text))
    })
}

const PARSE_STACK: usize = 64 << 20;

/// A file's tree and its problems, as [`parse`] returns them.
pub type Parsed = (Module, Vec<Diagnostic>);

/// Parse several files on up to `available_parallelism` threads. The results are in
/// the order of `files`, each exactly what [`parse`] gives for that file.
pub fn parse_all(files: &[(FileId, &str)]) -> Vec<Parsed> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len());
    if threads <= 1 {
        return files
            .iter()
            .map(|&(file, text)| parse(file, text))
            .collect();
    }
    // Workers take the next file from a shared counter (file sizes vary), and each
    // result goes to its file's slot, so the order does not depend on the timing.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Parsed>>> =
        files.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let work = || {
        loop {
            let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&(file, text)) = files.get(index) else {
                break;
            };
            let parsed = parse_here(file, text);
            if let Ok(mut slot) = slots[index].lock() {
                *slot = Some(parsed);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            // A worker that cannot be started leaves its share to the others, and a
            // file no worker reached is parsed below.
            let _ = std::thread::Builder::new()
                .name("flotilla-parse".into())
                .stack_size(PARSE_STACK)
                .spawn_scoped(scope, work);
        }
    });
    slots
        .into_iter()
        .zip(files)
        .map(|(slot, &(file, text))| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| parse(file, text))
        })
        .collect()
}

fn parse_here(file: FileId, text: &str) -> (Module, Vec<Diagnostic>) {
    let scanned = scan::scan(file, text);
    if !scanned.fatal.is_empty() {
        return (
            Module {
                items: Vec::new(),
                comments: scanned.comments,
            },
            scanned.fatal,
        );
    }
    let (mut items, diagnostics) = match parser::parse_items(file, text, text, 0) {
        Ok(parsed) => parsed,
        Err(first) => recover(file, text, first),
    };
    attach_docs(text, &scanned.comments, &mut items);
    (
        Module {
            items,
            comments: scanned.comments,
        },
        diagnostics,
    )
}

/// After a syntax error, parse each top-level declaration on its own (they start at
/// column 0 with a keyword), keeping what parses and one error per broken declaration.
fn recover(file: FileId, text: &str, first: Diagnostic) -> (Vec<Item>, Vec<Diagnostic>) {
    let mut items = Vec::new();
    let mut diagnostics = Vec::new();
    for (start, end) in chunks(text) {
        let (chunk_items, problems) = parse_chunk(file, text, start, end);
        items.extend(chunk_items);
        diagnostics.extend(problems);
    }
    add_first_error(&mut diagnostics, first);
    (items, diagnostics)
}

/// The pieces [`recover`] parses one by one: from each declaration's first line to
/// the next one's.
fn chunks(text: &str) -> Vec<(usize, usize)> {
    let starts = declaration_starts(text);
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    starts.iter().copied().zip(ends).collect()
}

/// `text[start..end]` parsed on its own, or its syntax error. The error's words read
/// `text` a little past `end` (the next declaration's keyword, or the end of the file).
fn parse_chunk(file: FileId, text: &str, start: usize, end: usize) -> (Vec<Item>, Vec<Diagnostic>) {
    parser::parse_items(file, text, &text[..end], start).unwrap_or_else(|d| (Vec::new(), vec![d]))
}

/// The error of the whole file's parse goes first, unless a piece reported it too.
fn add_first_error(diagnostics: &mut Vec<Diagnostic>, first: Diagnostic) {
    if !diagnostics.iter().any(|d| d.primary == first.primary) {
        diagnostics.insert(0, first);
        diagnostics.sort_by_key(|d| d.primary.as_ref().map(|l| l.span.start));
    }
}

/// The words a name cannot be (the grammar's `keyword`). `channel` and `cluster` are
/// not among them: they are keywords only at the start of a declaration.
pub fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "import"
            | "as"
            | "type"
            | "enum"
            | "let"
            | "check"
            | "if"
            | "then"
            | "else"
            | "for"
            | "in"
            | "true"
            | "false"
            | "null"
    )
}

fn declaration_starts(text: &str) -> Vec<usize> {
    const KEYWORDS: [&str; 6] = ["import ", "type ", "enum ", "let ", "channel ", "cluster "];
    let mut starts = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && KEYWORDS.iter().any(|k| line.starts_with(k)) {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts
}

/// `///` comments directly above a declaration (only blank space between) are its docs.
fn attach_docs(text: &str, comments: &[Comment], items: &mut [Item]) {
    let docs = |start: u32| -> Option<String> {
        let mut lines = Vec::new();
        let mut cursor = start as usize;
        let mut idx = comments.partition_point(|c| c.span.start < start);
        while idx > 0 {
            let c = &comments[idx - 1];
            let between = &text[c.span.end as usize..cursor];
            if !c.is_doc() || !between.trim().is_empty() || between.matches('\n').count() > 1 {
                break;
            }
            lines.push(
                c.text[1..]
                    .strip_prefix(' ')
                    .unwrap_or(&c.text[1..])
                    .to_string(),
            );
            cursor = c.span.start as usize;
            idx -= 1;
        }
        if lines.is_empty() {
            return None;
        }
        lines.reverse();
        Some(lines.join("\n"))
    };
    for item in items {
        match item {
            Item::Type(t) => {
                t.doc = docs(t.span.start);
                for member in &mut t.members {
                    if let Member::Field(f) = member {
                        f.doc = docs(f.span.start);
                    }
                }
            }
            Item::Enum(e) => {
                e.doc = docs(e.span.start);
                for v in &mut e.variants {
                    v.doc = docs(v.name.span.start);
                }
            }
            Item::Let(l) => l.doc = docs(l.span.start),
            Item::Alias(a) => a.doc = docs(a.span.start),
            Item::Channel(c) => c.doc = docs(c.span.start),
            Item::Cluster(c) => c.doc = docs(c.span.start),
            Item::Import(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ast::*;

    fn parse_ok(text: &str) -> Module {
        let (module, diagnostics) = parse(FileId(0), text);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        module
    }

    #[test]
    fn parses_the_design_sketch() {
        let m = parse_ok(
            r#"
import "std/aws"
import "./pools.flt" as pools

channel stable {
  kubernetes_version = "1.31.4"
  config_ref = "stable"
}

cluster "foobar" {
  account     = "123456789012"
  environment = production
  channel     = stable
  api_server_url = "https://${id}.example.org"
  config_items {
    coredns_memory_limit = 200Mi
  }
  node_pool "default-worker" {
    instance_types = ["m5.large", "m5.xlarge"]
    min_size = 3
    update { max_surge = 1  force_terminate_after = 3d }
  }
  ...pools.system
}
"#,
        );
        assert_eq!(m.items.len(), 4);
        let Item::Cluster(c) = &m.items[3] else {
            panic!("expected a cluster")
        };
        assert_eq!(c.id.value, "foobar");
        assert_eq!(c.body.entries.len(), 7);
        assert!(matches!(c.body.entries[6], Entry::Spread { .. }));
    }

    #[test]
    fn precedence_follows_the_table() {
        let m = parse_ok("let x = 1 + 2 * 3 == 7 && !false || a ?? b");
        let Item::Let(l) = &m.items[0] else { panic!() };
        let ExprKind::Binary(BinaryOp::Coalesce, lhs, _) = &l.value.kind else {
            panic!("?? binds loosest: {:?}", l.value.kind)
        };
        assert!(matches!(lhs.kind, ExprKind::Binary(BinaryOp::Or, _, _)));
    }

    #[test]
    fn doc_comments_attach_to_declarations() {
        let m = parse_ok(
            "/// A pool.\n/// Second line.\ntype P {\n  /// Its size.\n  size: Int = 1\n}\n",
        );
        let Item::Type(t) = &m.items[0] else { panic!() };
        assert_eq!(t.doc.as_deref(), Some("A pool.\nSecond line."));
        let Member::Field(f) = &t.members[0] else {
            panic!()
        };
        assert_eq!(f.doc.as_deref(), Some("Its size."));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("let x = {}1{}", "(".repeat(20_000), ")".repeat(20_000));
        let (_, diagnostics) = parse(FileId(0), &text);
        assert_eq!(diagnostics[0].code, "E0005");
    }

    #[test]
    fn maximum_nesting_parses() {
        let text = format!(
            "let x = {}1{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        parse_ok(&text);
    }

    #[test]
    fn a_byte_order_mark_may_open_a_file() {
        let m = parse_ok("\u{FEFF}let x = 1\n");
        assert_eq!(m.items.len(), 1);
        let (_, diagnostics) = parse(FileId(0), "let x = 1\n\u{FEFF}let y = 2\n");
        assert_eq!(diagnostics.len(), 1, "only at the start of the file");
    }

    #[test]
    fn syntax_errors_point_where_the_text_goes_wrong() {
        for (text, at) in [
            ("let x 1", "1"),
            ("type T { a Int }", "Int"),
            ("let x = {\"a\" = 1}", "= 1"),
        ] {
            let (_, diagnostics) = parse(FileId(0), text);
            let span = diagnostics[0].primary.as_ref().unwrap().span;
            assert_eq!(span.start as usize, text.find(at).unwrap(), "{text}");
            assert!(diagnostics[0].help.is_some(), "{text}: a hint");
        }
    }

    #[test]
    fn an_unclosed_interpolation_is_named_as_such() {
        for text in ["let x = \"a${y\"\n", "let x = \"a${1 +\nlet y = 2\n"] {
            let (_, diagnostics) = parse(FileId(0), text);
            assert_eq!(
                diagnostics[0].message, "unclosed `${` in a string",
                "{text}"
            );
            let span = diagnostics[0].primary.as_ref().unwrap().span;
            assert_eq!(span.start as usize, text.find("${").unwrap());
        }
    }

    #[test]
    fn parse_all_gives_what_parse_gives_each_file() {
        let texts: Vec<String> = (0..9)
            .map(|n| match n % 3 {
                0 => format!("let a{n} = {n}\ncluster \"c{n}\" {{ size = {n}Gi }}\n"),
                1 => format!("let b{n} = (1\nlet c{n} = \"x\\q\"\n"),
                _ => format!("type T{n} {{ a: Int = {n} }}\n"),
            })
            .collect();
        let files: Vec<(FileId, &str)> = texts
            .iter()
            .enumerate()
            .map(|(n, t)| (FileId(n as u32), t.as_str()))
            .collect();
        let together = parse_all(&files);
        assert_eq!(together.len(), files.len());
        for ((module, diagnostics), &(file, text)) in together.iter().zip(&files) {
            let (alone, alone_diagnostics) = parse(file, text);
            assert_eq!(module.items, alone.items, "{text}");
            assert_eq!(diagnostics, &alone_diagnostics, "{text}");
        }
        assert!(
            !together[1].1.is_empty(),
            "the broken files report their errors"
        );
    }

    #[test]
    fn recovers_to_report_errors_in_later_declarations() {
        let (m, diagnostics) = parse(FileId(0), "let a = (1\nlet b = 2\nlet c = ]\n");
        assert_eq!(diagnostics.len(), 2, "{diagnostics:#?}");
        assert_eq!(m.items.len(), 1);
    }
}
