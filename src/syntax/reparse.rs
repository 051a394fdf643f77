//! Re-parsing only what an edit changed (the language server parses the open document
//! again on every keystroke). A file's last parse without syntax errors is kept with
//! where each declaration ends; a new text re-uses the declarations before the edit as
//! they are, parses from the declaration before the first one the edit touches until a
//! declaration ends where an old one ended, past the edit, and re-uses the rest with
//! their spans shifted by the edit's change in length. The result is exactly what
//! [`super::parse`] gives for the new text (the property test below).
//!
//! Why that is exact:
//! - A declaration is parsed from `text[start..]` by one run of the parser
//!   ([`super::parser::parse_step`]: the hand-written one, or pest's where that one
//!   is not sure; both read the same text to decide, and give the same step).
//!   Once a new declaration ends at `e` past the edit, where an old one ended at
//!   `e - delta`, the rest of the new text is the rest of the old one, so every later
//!   run sees the same input and gives the same declarations.
//! - A declaration before the edit is parsed from text that the edit changed only past
//!   its end (its step ends after the blanks that follow it). The parser reads past that end
//!   only to try continuing the declaration (an operator, `as`, `else`), at the first
//!   token of the next declaration, a keyword that no continuation accepts. Were the
//!   edit to make it continue, the text where it used to end would no longer start a
//!   declaration: parsing from there fails, and the text is parsed as one with a
//!   syntax error (below), as the full parser does.
//!   The declaration just before the first one the edit touches is parsed again all
//!   the same, so that nothing it read past its end is taken on trust.
//!
//! A text with a syntax error is parsed as [`super::recover`] parses it, in chunks from
//! one top-level keyword line to the next, each parsed on its own: a chunk whose text
//! (and the keyword after it, which an error message may name) is that of a chunk of
//! the last text with a syntax error is re-used, shifted. The error of the whole
//! file's parse is that of a parse from the start of the declaration before the one
//! that fails: pest reports the attempts that got furthest, and those of the
//! declarations before end before that one's keyword. The last parse without syntax
//! errors stays the base for the next edit that has none.

use std::sync::Arc;

use super::ast::*;
use super::parser::{Step, SyntaxError, parse_step, syntax_error_in};
use super::{add_first_error, attach_docs, chunks, parse_chunk, scan};
use crate::diagnostic::{Diagnostic, Label};
use crate::source::FileId;
use crate::span::Span;

/// One file's parses, each re-using what it can of the last one.
#[derive(Default)]
pub struct Reparser {
    /// The last parse of a text without syntax errors, in declarations.
    valid: Option<Kept>,
    /// The last parse of a text with one, in chunks.
    broken: Option<Kept>,
}

/// A parse, and the pieces it was made of, one after the other from the start.
struct Kept {
    file: FileId,
    text: String,
    pieces: Vec<Piece>,
    module: Arc<Module>,
}

/// A declaration (with the blanks and comments before it), or a chunk.
struct Piece {
    /// Where it ends; it starts where the one before it ended.
    end: usize,
    /// How many of the module's items it holds (a declaration with a bad literal none).
    items: usize,
    /// Its problems: literal errors, a chunk's syntax error.
    problems: Vec<Diagnostic>,
}

/// Pieces parsed again, and where the old ones are taken up again.
struct Reparsed {
    pieces: Vec<(Piece, Vec<Item>)>,
    /// The old pieces before this index are kept as they are...
    first: usize,
    /// ...and those from this one on are shifted by the edit.
    resumed: usize,
}

impl Reparser {
    /// Parse `text` as file `file`: the same tree and problems as [`super::parse`].
    pub fn parse(&mut self, file: FileId, text: &str) -> (Arc<Module>, Vec<Diagnostic>) {
        let scanned = scan::scan(file, text);
        if !scanned.fatal.is_empty() {
            let module = Module {
                items: Vec::new(),
                comments: scanned.comments,
            };
            return (Arc::new(module), scanned.fatal);
        }
        let valid = self.valid.take().filter(|kept| kept.file == file);
        match declarations(file, text, valid.as_ref()) {
            Ok((parsed, edit)) => {
                let (module, diagnostics, kept) =
                    assemble(file, text, valid, parsed, &edit, scanned.comments, None);
                self.valid = Some(kept);
                (module, diagnostics)
            }
            Err(from) => {
                self.valid = valid;
                let first_error = syntax_error_in(file, text, text, from);
                let broken = self.broken.take().filter(|kept| kept.file == file);
                let edit = Edit::between(broken.as_ref().map_or("", |k| &k.text), text);
                let parsed = chunked(file, text, broken.as_ref(), &edit);
                let (module, diagnostics, kept) = assemble(
                    file,
                    text,
                    broken,
                    parsed,
                    &edit,
                    scanned.comments,
                    Some(first_error),
                );
                self.broken = Some(kept);
                (module, diagnostics)
            }
        }
    }
}

/// Parse `text` declaration by declaration, re-using those of `valid` the edit cannot
/// have changed. On a syntax error: where the declaration before the failing one starts.
fn declarations(file: FileId, text: &str, valid: Option<&Kept>) -> Result<(Reparsed, Edit), usize> {
    let edit = Edit::between(valid.map_or("", |k| &k.text), text);
    let old: &[Piece] = valid.map_or(&[], |k| &k.pieces);
    let start_of = |i: usize| i.checked_sub(1).map_or(0, |i| old[i].end);
    // Parse again from the declaration before the first one the edit touches.
    let touched = old.partition_point(|d| d.end < edit.start);
    let first = touched.saturating_sub(1);
    let mut at = start_of(first);
    let mut before = first.checked_sub(1).map_or(0, start_of);
    let mut pieces = Vec::new();
    let mut resumed = old.len();
    loop {
        match parse_step(file, text, at, at == 0) {
            Ok(Some(Step {
                end,
                item,
                problems,
            })) => {
                before = at;
                at = end;
                let piece = Piece {
                    end,
                    items: usize::from(item.is_some()),
                    problems,
                };
                pieces.push((piece, item.into_iter().collect()));
                if at >= edit.new_end {
                    let old_end = at.wrapping_sub(edit.delta as usize);
                    if let Ok(i) = old.binary_search_by_key(&old_end, |d| d.end) {
                        resumed = i + 1;
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(SyntaxError) => return Err(before),
        }
    }
    let parsed = Reparsed {
        pieces,
        first,
        resumed,
    };
    Ok((parsed, edit))
}

/// The chunks of a text with a syntax error ([`super::recover`]), re-using those of
/// `broken` whose text (and the keyword after it) the edit did not change.
fn chunked(file: FileId, text: &str, broken: Option<&Kept>, edit: &Edit) -> Reparsed {
    // The longest keyword an error message may read past a chunk's end.
    const KEYWORD: usize = "cluster".len();
    let old: &[Piece] = broken.map_or(&[], |k| &k.pieces);
    let start_of = |i: usize| i.checked_sub(1).map_or(0, |i| old[i].end);
    let chunks = chunks(text);
    let first = chunks
        .iter()
        .zip(old)
        .take_while(|((_, end), piece)| *end == piece.end && end + KEYWORD < edit.start)
        .count();
    let (mut last, mut resumed) = (chunks.len(), old.len());
    while last > first && resumed > first {
        let (start, end) = chunks[last - 1];
        let same = start >= edit.new_end
            && start_of(resumed - 1) == start.wrapping_sub(edit.delta as usize)
            && old[resumed - 1].end == end.wrapping_sub(edit.delta as usize);
        if !same {
            break;
        }
        last -= 1;
        resumed -= 1;
    }
    let pieces = chunks[first..last]
        .iter()
        .map(|&(start, end)| {
            let (items, problems) = parse_chunk(file, text, start, end);
            let piece = Piece {
                end,
                items: items.len(),
                problems,
            };
            (piece, items)
        })
        .collect();
    Reparsed {
        pieces,
        first,
        resumed,
    }
}

/// The module and problems of `text`: `old`'s pieces before `parsed.first` as they are,
/// the new ones, and `old`'s from `parsed.resumed` on shifted by the edit.
fn assemble(
    file: FileId,
    text: &str,
    old: Option<Kept>,
    parsed: Reparsed,
    edit: &Edit,
    comments: Vec<Comment>,
    first_error: Option<Diagnostic>,
) -> (Arc<Module>, Vec<Diagnostic>, Kept) {
    let Reparsed {
        pieces: new,
        first,
        resumed,
    } = parsed;
    let (mut items, mut pieces) = match old {
        Some(old) => (Arc::unwrap_or_clone(old.module).items, old.pieces),
        None => (Vec::new(), Vec::new()),
    };
    let items_before: usize = pieces[..first].iter().map(|p| p.items).sum();
    let items_replaced: usize = pieces[first..resumed].iter().map(|p| p.items).sum();
    let mut items_after = items.split_off(items_before + items_replaced);
    items.truncate(items_before);
    let mut after = pieces.split_off(resumed);
    pieces.truncate(first);
    for item in &mut items_after {
        shift_item(item, edit.delta);
    }
    for piece in &mut after {
        piece.end = piece.end.wrapping_add(edit.delta as usize);
        for problem in &mut piece.problems {
            shift_diagnostic(problem, file, edit.delta);
        }
    }
    for (piece, piece_items) in new {
        pieces.push(piece);
        items.extend(piece_items);
    }
    items.append(&mut items_after);
    pieces.append(&mut after);

    attach_docs(text, &comments, &mut items);
    let module = Arc::new(Module { items, comments });
    let mut diagnostics: Vec<Diagnostic> = pieces
        .iter()
        .flat_map(|p| p.problems.iter().cloned())
        .collect();
    if let Some(first_error) = first_error {
        add_first_error(&mut diagnostics, first_error);
    }
    let kept = Kept {
        file,
        text: text.to_owned(),
        pieces,
        module: module.clone(),
    };
    (module, diagnostics, kept)
}

/// Where two texts differ: everything before `start` is the same, and everything
/// from `old_end` in the old text is the same as from `new_end` in the new one.
struct Edit {
    start: usize,
    new_end: usize,
    /// New length less old length.
    delta: isize,
}

impl Edit {
    fn between(old: &str, new: &str) -> Edit {
        let (old, new) = (old.as_bytes(), new.as_bytes());
        let start = old.iter().zip(new).take_while(|(a, b)| a == b).count();
        let room = old.len().min(new.len()) - start;
        let same_end = old
            .iter()
            .rev()
            .zip(new.iter().rev())
            .take(room)
            .take_while(|(a, b)| a == b)
            .count();
        Edit {
            start,
            new_end: new.len() - same_end,
            delta: new.len() as isize - old.len() as isize,
        }
    }
}

fn shift(span: &mut Span, delta: isize) {
    span.start = (span.start as isize + delta) as u32;
    span.end = (span.end as isize + delta) as u32;
}

fn shift_diagnostic(diagnostic: &mut Diagnostic, file: FileId, delta: isize) {
    let labels = diagnostic
        .primary
        .iter_mut()
        .chain(diagnostic.secondary.iter_mut());
    for Label { file: f, span, .. } in labels {
        if *f == file {
            shift(span, delta);
        }
    }
}

// The walk below names every field of every node (no `..`), so a node that gains a
// span fails to compile here until it is shifted too.

fn shift_item(item: &mut Item, d: isize) {
    match item {
        Item::Import(Import { path, alias, span }) => {
            shift_plain(path, d);
            if let Some(alias) = alias {
                shift(&mut alias.span, d);
            }
            shift(span, d);
        }
        Item::Type(TypeDecl {
            doc: _,
            name,
            members,
            span,
        }) => {
            shift(&mut name.span, d);
            for member in members {
                match member {
                    Member::Field(FieldDecl {
                        doc: _,
                        attributes,
                        name,
                        ty,
                        default,
                        span,
                    }) => {
                        for Attribute {
                            name,
                            argument,
                            span,
                        } in attributes
                        {
                            shift(&mut name.span, d);
                            if let Some(argument) = argument {
                                shift_plain(argument, d);
                            }
                            shift(span, d);
                        }
                        shift(&mut name.span, d);
                        shift_type(ty, d);
                        if let Some(default) = default {
                            shift_expr(default, d);
                        }
                        shift(span, d);
                    }
                    Member::Check(CheckDecl {
                        condition,
                        message,
                        span,
                    }) => {
                        shift_expr(condition, d);
                        shift_expr(message, d);
                        shift(span, d);
                    }
                }
            }
            shift(span, d);
        }
        Item::Alias(AliasDecl {
            doc: _,
            name,
            ty,
            span,
        }) => {
            shift(&mut name.span, d);
            shift_type(ty, d);
            shift(span, d);
        }
        Item::Enum(EnumDecl {
            doc: _,
            name,
            variants,
            span,
        }) => {
            shift(&mut name.span, d);
            for Variant { doc: _, name } in variants {
                shift(&mut name.span, d);
            }
            shift(span, d);
        }
        Item::Let(LetDecl {
            doc: _,
            name,
            ty,
            value,
            span,
        }) => {
            shift(&mut name.span, d);
            if let Some(ty) = ty {
                shift_type(ty, d);
            }
            shift_expr(value, d);
            shift(span, d);
        }
        Item::Channel(ChannelDecl {
            doc: _,
            name,
            body,
            span,
        }) => {
            shift(&mut name.span, d);
            shift_block(body, d);
            shift(span, d);
        }
        Item::Cluster(ClusterDecl {
            doc: _,
            id,
            body,
            span,
        }) => {
            shift_plain(id, d);
            shift_block(body, d);
            shift(span, d);
        }
    }
}

fn shift_plain(string: &mut PlainString, d: isize) {
    let PlainString { value: _, span } = string;
    shift(span, d);
}

fn shift_type(ty: &mut TypeExpr, d: isize) {
    let TypeExpr { kind, span } = ty;
    match kind {
        TypeExprKind::Named { module, name } => {
            if let Some(module) = module {
                shift(&mut module.span, d);
            }
            shift(&mut name.span, d);
        }
        TypeExprKind::List(inner) | TypeExprKind::Map(inner) | TypeExprKind::Optional(inner) => {
            shift_type(inner, d);
        }
    }
    shift(span, d);
}

fn shift_block(block: &mut Block, d: isize) {
    let Block { entries, span } = block;
    for entry in entries {
        match entry {
            Entry::Field { name, value, span } => {
                shift(&mut name.span, d);
                shift_expr(value, d);
                shift(span, d);
            }
            Entry::Block {
                name,
                label,
                body,
                span,
            } => {
                shift(&mut name.span, d);
                if let Some(label) = label {
                    shift_plain(label, d);
                }
                shift_block(body, d);
                shift(span, d);
            }
            Entry::Spread { expr, span } => {
                shift_expr(expr, d);
                shift(span, d);
            }
        }
    }
    shift(span, d);
}

fn shift_expr(expr: &mut Expr, d: isize) {
    let Expr { kind, span } = expr;
    match kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Null
        | ExprKind::UnitNumber { number: _, unit: _ } => {}
        ExprKind::Str(parts) => {
            for part in parts {
                match part {
                    StrPart::Text(_) => {}
                    StrPart::Interpolation(e) => shift_expr(e, d),
                }
            }
        }
        ExprKind::List(items) => items.iter_mut().for_each(|e| shift_expr(e, d)),
        ExprKind::Map(entries) => {
            for (key, value) in entries {
                shift_plain(key, d);
                shift_expr(value, d);
            }
        }
        ExprKind::Record { ty, body } => {
            if let Some(ty) = ty {
                shift_type(ty, d);
            }
            shift_block(body, d);
        }
        ExprKind::Name(name) => shift(&mut name.span, d),
        ExprKind::Field(base, name) => {
            shift_expr(base, d);
            shift(&mut name.span, d);
        }
        ExprKind::Index(base, index) => {
            shift_expr(base, d);
            shift_expr(index, d);
        }
        ExprKind::Call(name, arguments) => {
            shift(&mut name.span, d);
            arguments.iter_mut().for_each(|e| shift_expr(e, d));
        }
        ExprKind::Unary(_, e) | ExprKind::Paren(e) => shift_expr(e, d),
        ExprKind::Binary(_, l, r) => {
            shift_expr(l, d);
            shift_expr(r, d);
        }
        ExprKind::If(c, t, e) => {
            shift_expr(c, d);
            shift_expr(t, d);
            shift_expr(e, d);
        }
        ExprKind::Comprehension {
            body,
            var,
            iter,
            filter,
        } => {
            shift_expr(body, d);
            shift(&mut var.span, d);
            shift_expr(iter, d);
            if let Some(filter) = filter {
                shift_expr(filter, d);
            }
        }
    }
    shift(span, d);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::syntax::parse;

    /// The example fleet, and generated clusters with every kind of declaration.
    fn texts() -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet");
        let mut texts: Vec<String> = ["production.flt", "pools.flt", "platform.flt", "org.flt"]
            .iter()
            .map(|name| std::fs::read_to_string(format!("{dir}/{name}")).unwrap())
            .collect();
        let mut generated = String::from(
            "import \"std/aws\" as aws\n\n/// A size.\ntype Size = Int\n\nenum Tier { gold, silver }\n\n\
             type Pool {\n  /// Its name.\n  @label name: String\n  size: Int = 1\n  check size > 0 : \"positive\"\n}\n\n\
             let base = 3\nlet names = [\"p${n}\" for n in [1, 2] if n > 1]\n\n",
        );
        for n in 0..12 {
            generated.push_str(&format!(
                "// cluster {n}\ncluster \"c-{n}\" {{\n  account = \"{:012}\"\n  environment = production\n  \
                 config_items {{ memory = {n}00Mi, wait = {n}s }}\n  node_pool \"p\" {{ min_size = base + {n} }}\n  \
                 labels = {{ \"a\": \"b${{base}}\" }}\n}}\nlet v{n} = base * {n} ?? 1\n\n",
                n
            ));
        }
        texts.push(generated);
        texts
    }

    /// The property test starts from texts without syntax errors, so that it covers
    /// reparsing a valid file as well as a broken one.
    #[test]
    fn the_starting_texts_parse_without_errors() {
        for text in texts() {
            let (_, problems) = super::super::parse(FileId(0), &text);
            assert!(problems.is_empty(), "{problems:?}");
        }
    }

    /// Text an edit may insert: tokens that continue or end a declaration, open or
    /// close strings, comments and brackets, start new declarations, or break them.
    const INSERTS: &[&str] = &[
        "",
        "x",
        "9",
        " ",
        "\n",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "${",
        "//",
        "/// doc\n",
        "+ 1",
        "\n+ 1",
        "\n(2)",
        "+ 1\n",
        ".b\n",
        ".a",
        "\n.b",
        " as x",
        "= ",
        "\\q",
        "5Zz",
        "}\n\ncluster \"new\" {\n",
        "\nlet z = 1\n",
        "\ntype T { a: Int }\n",
        "let",
        "cluster",
        "\u{FEFF}",
        "é",
    ];

    fn boundary(text: &str, at: usize) -> usize {
        let mut at = at.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    fn same_as_full_parse(reparser: &mut Reparser, text: &str) -> Result<(), TestCaseError> {
        let (module, diagnostics) = reparser.parse(FileId(3), text);
        let (full, full_diagnostics) = parse(FileId(3), text);
        prop_assert_eq!(&module.items, &full.items, "items of {:?}", text);
        prop_assert_eq!(&module.comments, &full.comments);
        prop_assert_eq!(&diagnostics, &full_diagnostics, "problems of {:?}", text);
        Ok(())
    }

    fn edits() -> impl Strategy<Value = (usize, Vec<(f64, usize, usize)>)> {
        (
            0..5usize,
            prop::collection::vec((0.0..1.0f64, 0..40usize, 0..INSERTS.len()), 1..8),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Each text of a series of random edits, parsed by one reparser, is parsed
        /// exactly as a full parse would.
        #[test]
        fn reparsing_equals_a_full_parse((which, edits) in edits()) {
            // The grammar recurses; the full parse runs on a thread with room for it.
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn(move || -> Result<(), TestCaseError> {
                    let mut text = texts().swap_remove(which);
                    let mut reparser = Reparser::default();
                    same_as_full_parse(&mut reparser, &text)?;
                    for (at, removed, insert) in edits {
                        let start = boundary(&text, (at * text.len() as f64) as usize);
                        let end = boundary(&text, start + removed).max(start);
                        text.replace_range(start..end, INSERTS[insert]);
                        same_as_full_parse(&mut reparser, &text)?;
                    }
                    Ok(())
                })
                .unwrap()
                .join()
                .unwrap()?;
        }
    }

    #[test]
    fn declarations_after_an_edit_are_shifted() {
        let text = "let a = 1\nlet b = 2\nlet c = 3\nlet d = 4\n";
        let mut reparser = Reparser::default();
        reparser.parse(FileId(0), text);
        let edited = text.replace("c = 3", "c = 33");
        let (module, _) = reparser.parse(FileId(0), &edited);
        assert_eq!(module.items, parse(FileId(0), &edited).0.items);
        // Each declaration ends with the blanks after it. `a` is reused, `b` (just
        // before the edit) and `c` are parsed again, `d` is shifted by one.
        let kept = reparser.valid.as_ref().unwrap();
        let ends: Vec<usize> = kept.pieces.iter().map(|d| d.end).collect();
        assert_eq!(ends, [10, 20, 31, 41]);
    }

    #[test]
    fn a_syntax_error_keeps_the_last_good_parse_as_the_base() {
        let mut reparser = Reparser::default();
        reparser.parse(FileId(0), "let a = 1\nlet b = 2\n");
        let (_, diagnostics) = reparser.parse(FileId(0), "let a = 1\nlet b = )\n");
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(
            reparser.valid.as_ref().unwrap().text,
            "let a = 1\nlet b = 2\n"
        );
        let (module, diagnostics) = reparser.parse(FileId(0), "let a = 1\nlet b = 3\n");
        assert!(diagnostics.is_empty());
        assert_eq!(module.items.len(), 2);
    }
}
