//! The canonical layout of `.flt` source (`flotilla fmt`, LSP formatting).
//!
//! The printer walks the syntax tree and writes its tokens in source order. Comments are
//! not in the tree, so before each token that has a position in the source, the comments
//! that precede it are placed: a comment that had code before it on its line joins the end
//! of the current output line, any other comment gets a line of its own. Line breaks are
//! requested rather than written, so a trailing comment can still join the line before a
//! requested break. Because placement depends only on which tokens a comment sits between
//! and whether it had code before it, formatting the output again places it the same way.
//!
//! Lists, maps, calls and comprehensions are first printed on one line (and rolled back if
//! that line is too long or something in it needs a line break), else one element per line.

use crate::diagnostic::Diagnostic;
use crate::source::FileId;
use crate::syntax;
use crate::syntax::ast::*;

/// Lines longer than this are broken where the layout allows it.
const WIDTH: usize = 100;
const INDENT: &str = "  ";

/// Parse and format `text`. Refuses (returning the diagnostics) if it has syntax errors,
/// since formatting a partial tree would drop the broken declarations.
pub fn format_source(file: FileId, text: &str) -> Result<String, Vec<Diagnostic>> {
    let (module, diagnostics) = syntax::parse(file, text);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(diagnostics);
    }
    Ok(format_module(&module, text))
}

/// Print `module` in the canonical layout. `text` is the source it was parsed from; it is
/// read for comment placement and the blank lines to keep. Comments (doc comments too)
/// are printed from `module.comments`, not from the `doc` fields. A tree built without
/// source (default spans, no comments) prints with an empty `text`.
pub fn format_module(module: &Module, text: &str) -> String {
    let mut printer = Printer::new(module, text);
    printer.module(module);
    printer.finish()
}

/// How the first line of a statement (or of its leading comments) is separated from
/// the statement before it.
#[derive(Clone, Copy)]
enum Separation {
    /// One blank line if the source had at least one.
    AsWritten,
    /// Always one blank line (between top-level declarations).
    BlankLine,
    /// Never a blank line (between consecutive imports).
    Adjacent,
}

#[derive(Clone, Copy)]
enum Layout {
    OneLine,
    OnePerLine,
}

/// Printer state to roll back to when a one-line attempt fails.
#[derive(Clone, Copy)]
struct Checkpoint {
    len: usize,
    column: usize,
    indent: usize,
    pending_breaks: usize,
    line_ends_in_comment: bool,
    next_comment: usize,
    one_line: bool,
    one_line_failed: bool,
}

struct Printer<'a> {
    text: &'a str,
    comments: &'a [Comment],
    /// Per comment: it stays at the end of the line holding the code before it.
    trailing: Vec<bool>,
    /// The first comment not yet printed.
    next_comment: usize,
    out: String,
    /// Characters on the current output line.
    column: usize,
    indent: usize,
    /// Line breaks requested and not yet written (2 is a blank line).
    pending_breaks: usize,
    /// The current line ends with a comment, so nothing may be appended to it.
    line_ends_in_comment: bool,
    /// Printing a one-line attempt: anything that needs a line break fails it.
    one_line: bool,
    one_line_failed: bool,
    /// Inside `${…}`: a string cannot be broken, so width limits do not apply.
    in_interpolation: usize,
}

impl<'a> Printer<'a> {
    fn new(module: &'a Module, text: &'a str) -> Printer<'a> {
        Printer {
            text,
            comments: &module.comments,
            trailing: trailing_comments(module, text),
            next_comment: 0,
            out: String::with_capacity(text.len() + text.len() / 4),
            column: 0,
            indent: 0,
            pending_breaks: 0,
            line_ends_in_comment: false,
            one_line: false,
            one_line_failed: false,
            in_interpolation: 0,
        }
    }

    fn finish(mut self) -> String {
        if !self.line_ends_in_comment {
            self.trim_line_end();
        }
        self.out.push('\n');
        self.out
    }

    // ---- output -------------------------------------------------------------

    fn write(&mut self, mut text: &str) {
        if self.one_line_failed || text.is_empty() {
            return;
        }
        if self.pending_breaks > 0 {
            if self.one_line {
                self.one_line_failed = true;
                return;
            }
            self.break_lines();
            // A separator space (` = `, ` {`) is not needed at the start of a line.
            text = text.trim_start_matches(' ');
        }
        self.out.push_str(text);
        self.column += text.chars().count();
        self.line_ends_in_comment = false;
    }

    /// Write `text`, the token at source offset `pos`, after the comments before it.
    fn token(&mut self, pos: u32, text: &str) {
        self.flush_comments(pos);
        self.write(text);
    }

    fn request_break(&mut self, count: usize) {
        if self.one_line {
            self.one_line_failed = true;
            return;
        }
        self.pending_breaks = self.pending_breaks.max(count);
    }

    fn break_lines(&mut self) {
        if !self.line_ends_in_comment {
            self.trim_line_end();
        }
        if !self.out.is_empty() {
            for _ in 0..self.pending_breaks.min(2) {
                self.out.push('\n');
            }
        }
        self.pending_breaks = 0;
        for _ in 0..self.indent {
            self.out.push_str(INDENT);
        }
        self.column = self.indent * INDENT.len();
        self.line_ends_in_comment = false;
    }

    /// Drop separator spaces left at the end of the line (`x = ` before a comment).
    fn trim_line_end(&mut self) {
        let trimmed = self.out.trim_end_matches(' ').len();
        self.column = self.column.saturating_sub(self.out.len() - trimmed);
        self.out.truncate(trimmed);
    }

    fn line_has_code(&self) -> bool {
        !self.out.is_empty() && !self.line_ends_in_comment
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            len: self.out.len(),
            column: self.column,
            indent: self.indent,
            pending_breaks: self.pending_breaks,
            line_ends_in_comment: self.line_ends_in_comment,
            next_comment: self.next_comment,
            one_line: self.one_line,
            one_line_failed: self.one_line_failed,
        }
    }

    fn restore(&mut self, checkpoint: Checkpoint) {
        self.out.truncate(checkpoint.len);
        self.column = checkpoint.column;
        self.indent = checkpoint.indent;
        self.pending_breaks = checkpoint.pending_breaks;
        self.line_ends_in_comment = checkpoint.line_ends_in_comment;
        self.next_comment = checkpoint.next_comment;
        self.one_line = checkpoint.one_line;
        self.one_line_failed = checkpoint.one_line_failed;
    }

    // ---- comments -----------------------------------------------------------

    fn comment_before(&self, pos: u32) -> Option<&'a Comment> {
        self.comments
            .get(self.next_comment)
            .filter(|c| c.span.start < pos)
    }

    /// Place the comments before `pos` inside an expression (no blank lines kept).
    fn flush_comments(&mut self, pos: u32) {
        while self.comment_before(pos).is_some() {
            if self.one_line {
                self.one_line_failed = true;
                return;
            }
            self.place_comment(false);
        }
    }

    /// Print the next comment, at the end of the current line or on its own line.
    /// Returns whether it got its own line.
    fn place_comment(&mut self, blank_before: bool) -> bool {
        let index = self.next_comment;
        let Some(comment) = self.comments.get(index) else {
            return false;
        };
        self.next_comment += 1;
        let joins = self.trailing.get(index).copied().unwrap_or(false) && self.line_has_code();
        if joins {
            self.trim_line_end();
            self.out.push_str(" //");
        } else {
            if !self.out.is_empty() {
                let breaks = if blank_before { 2 } else { 1 };
                self.pending_breaks = self.pending_breaks.max(breaks);
            }
            self.break_lines();
            self.out.push_str("//");
        }
        self.out.push_str(&comment.text);
        self.line_ends_in_comment = true;
        self.pending_breaks = self.pending_breaks.max(1);
        !joins
    }

    /// Place the comments before a statement (or closing brace) at `pos`, keeping at most
    /// one blank line where the source had some. Returns whether a blank line should
    /// precede `pos` itself.
    fn statement_comments(
        &mut self,
        pos: u32,
        prev_end: Option<u32>,
        separation: Separation,
    ) -> bool {
        let mut last_end = prev_end;
        let mut separated = false;
        while let Some(comment) = self.comment_before(pos) {
            let span = comment.span;
            let blank = if separated {
                self.blank_between(last_end, span.start)
            } else {
                self.separates(separation, last_end, span.start)
            };
            separated |= self.place_comment(blank);
            last_end = Some(last_end.map_or(span.end, |end| end.max(span.end)));
        }
        if separated {
            self.blank_between(last_end, pos)
        } else {
            self.separates(separation, last_end, pos)
        }
    }

    fn separates(&self, separation: Separation, from: Option<u32>, to: u32) -> bool {
        match separation {
            Separation::AsWritten => self.blank_between(from, to),
            Separation::BlankLine => true,
            Separation::Adjacent => false,
        }
    }

    /// Whether the source has a blank line between `from` and `to`. (Counting line breaks
    /// would not do: `// c`, a break, `,` and a break are two breaks and no blank line.)
    fn blank_between(&self, from: Option<u32>, to: u32) -> bool {
        from.and_then(|from| self.text.get(from as usize..to as usize))
            .is_some_and(|gap| {
                let mut lines = gap.split('\n');
                lines.next_back();
                lines.skip(1).any(|line| line.trim().is_empty())
            })
    }

    /// Place the comments before `pos` if one of them is a `///` comment. For an
    /// unpositioned token at `pos` that ends a statement (`{`, `,`): printed before the
    /// comments, it would let a doc comment the parser skipped document the next one.
    fn flush_doc_comments(&mut self, pos: Option<u32>) {
        let Some(pos) = pos else {
            return;
        };
        let pending = &self.comments[self.next_comment.min(self.comments.len())..];
        let before = pending.partition_point(|c| c.span.start < pos);
        if pending[..before].iter().any(Comment::is_doc) {
            self.flush_comments(pos);
        }
    }

    /// Start a statement at `start` on a new line, after the comments before it.
    fn statement(&mut self, start: u32, prev_end: Option<u32>, separation: Separation) {
        let blank = self.statement_comments(start, prev_end, separation);
        self.request_break(if blank { 2 } else { 1 });
    }

    /// A comment strictly inside `from..to`.
    fn comment_within(&self, from: u32, to: u32) -> bool {
        let first = self.comments.partition_point(|c| c.span.start <= from);
        self.comments.get(first).is_some_and(|c| c.span.start < to)
    }

    // ---- declarations -------------------------------------------------------

    fn module(&mut self, module: &Module) {
        let mut previous: Option<&Item> = None;
        for item in &module.items {
            let separation = match (previous, item) {
                (None, _) => Separation::AsWritten,
                (Some(Item::Import(_)), Item::Import(_)) => Separation::Adjacent,
                (Some(_), _) => Separation::BlankLine,
            };
            self.statement(item.span().start, previous.map(item_end), separation);
            self.item(item);
            previous = Some(item);
        }
        self.statement_comments(u32::MAX, previous.map(item_end), Separation::AsWritten);
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Import(import) => {
                self.token(import.span.start, "import ");
                self.plain_string(&import.path);
                if let Some(alias) = &import.alias {
                    self.write(" as ");
                    self.ident(alias);
                }
            }
            Item::Type(decl) => {
                self.token(decl.span.start, "type ");
                self.ident(&decl.name);
                self.flush_doc_comments(self.next_token(decl.name.span.end, b'{'));
                self.write(" {");
                self.braced(
                    &decl.members,
                    closing_bracket(decl.span),
                    |member| (member_start(member), member_end(member)),
                    |printer, _, member| printer.member(member),
                );
            }
            Item::Alias(decl) => {
                self.token(decl.span.start, "type ");
                self.ident(&decl.name);
                self.write(" = ");
                self.type_expr(&decl.ty);
            }
            Item::Enum(decl) => {
                self.token(decl.span.start, "enum ");
                self.ident(&decl.name);
                self.flush_doc_comments(self.next_token(decl.name.span.end, b'{'));
                self.write(" {");
                self.braced(
                    &decl.variants,
                    closing_bracket(decl.span),
                    |variant| (variant.name.span.start, variant.name.span.end),
                    |printer, _, variant| {
                        printer.ident(&variant.name);
                        let comma = printer.next_token(variant.name.span.end, b',');
                        printer.flush_doc_comments(comma);
                        printer.write(",");
                    },
                );
            }
            Item::Let(decl) => {
                self.token(decl.span.start, "let ");
                self.ident(&decl.name);
                if let Some(ty) = &decl.ty {
                    self.write(": ");
                    self.type_expr(ty);
                }
                self.write(" = ");
                self.expr(&decl.value, 0);
            }
            Item::Channel(decl) => {
                self.token(decl.span.start, "channel ");
                self.ident(&decl.name);
                self.write(" ");
                self.block(&decl.body);
            }
            Item::Cluster(decl) => {
                self.token(decl.span.start, "cluster ");
                self.plain_string(&decl.id);
                self.write(" ");
                self.block(&decl.body);
            }
        }
    }

    fn member(&mut self, member: &Member) {
        match member {
            Member::Field(field) => {
                for attribute in &field.attributes {
                    self.token(attribute.span.start, "@");
                    self.ident(&attribute.name);
                    if let Some(argument) = &attribute.argument {
                        self.write("(");
                        self.plain_string(argument);
                        self.token(attribute.span.end.saturating_sub(1), ")");
                    }
                    self.write(" ");
                }
                self.ident(&field.name);
                self.write(": ");
                self.type_expr(&field.ty);
                if let Some(default) = &field.default {
                    self.write(" = ");
                    self.expr(default, 0);
                }
            }
            Member::Check(check) => {
                self.token(check.span.start, "check ");
                self.expr(&check.condition, 0);
                self.write(" : ");
                self.expr(&check.message, 0);
            }
        }
    }

    /// The statements of a body whose `{` is written, one per line, then the comments
    /// before the closing brace at `close` and the brace. An empty body is `{}`.
    fn braced<T>(
        &mut self,
        statements: &[T],
        close: u32,
        bounds: impl Fn(&T) -> (u32, u32),
        mut print: impl FnMut(&mut Self, usize, &T),
    ) {
        if statements.is_empty() && self.comment_before(close).is_none() {
            self.token(close, "}");
            return;
        }
        if self.one_line {
            self.one_line_failed = true;
            return;
        }
        self.indent += 1;
        let mut prev_end = None;
        for (index, statement) in statements.iter().enumerate() {
            let (start, end) = bounds(statement);
            self.statement(start, prev_end, Separation::AsWritten);
            print(self, index, statement);
            prev_end = Some(end);
        }
        self.statement_comments(close, prev_end, Separation::AsWritten);
        self.indent -= 1;
        self.request_break(1);
        self.token(close, "}");
    }

    fn block(&mut self, block: &Block) {
        self.token(block.span.start, "{");
        let pads = if self.one_line || block.entries.is_empty() {
            Vec::new()
        } else {
            self.alignment(&block.entries, self.indent + 1)
        };
        self.braced(
            &block.entries,
            closing_bracket(block.span),
            |entry| (entry.span().start, entry_end(entry)),
            |printer, index, entry| printer.entry(entry, pads.get(index).copied().flatten()),
        );
    }

    /// `pad` is the name width to align `=` to.
    fn entry(&mut self, entry: &Entry, pad: Option<usize>) {
        match entry {
            Entry::Field { name, value, .. } => {
                self.ident(name);
                if let Some(pad) = pad {
                    let padding = pad.saturating_sub(name.name.chars().count());
                    self.write(&" ".repeat(padding));
                }
                self.write(" = ");
                self.expr(value, 0);
            }
            Entry::Block {
                name, label, body, ..
            } => {
                self.ident(name);
                if let Some(label) = label {
                    self.write(" ");
                    self.plain_string(label);
                }
                self.write(" ");
                self.block(body);
            }
            Entry::Spread { expr, span } => {
                self.token(span.start, "...");
                self.expr(expr, 0);
            }
        }
    }

    /// The `=` column of each field assignment: runs of adjacent one-line assignments
    /// (no blank line or comment line between) align on their longest name.
    fn alignment(&mut self, entries: &[Entry], indent: usize) -> Vec<Option<usize>> {
        let widths: Vec<Option<usize>> = entries
            .iter()
            .map(|entry| match entry {
                Entry::Field { value, span, .. }
                    if !self.comment_within(span.start, expr_end(value)) =>
                {
                    self.one_line_width(value)
                }
                _ => None,
            })
            .collect();
        let name_widths: Vec<usize> = entries
            .iter()
            .map(|entry| match entry {
                Entry::Field { name, .. } => name.name.chars().count(),
                _ => 0,
            })
            .collect();
        let adjacent: Vec<bool> = (0..entries.len())
            .map(|i| i > 0 && self.adjacent(entry_end(&entries[i - 1]), entries[i].span().start))
            .collect();
        let mut aligned: Vec<bool> = widths.iter().map(Option::is_some).collect();
        // Padding can push a value past the width; such entries leave their run, which
        // may shrink the padding of the rest, so repeat until nothing changes.
        loop {
            let pads = run_pads(&aligned, &adjacent, &name_widths);
            let mut changed = false;
            for (i, (pad, width)) in pads.iter().zip(&widths).enumerate() {
                if let (Some(pad), Some(width)) = (pad, width)
                    && indent * INDENT.len() + pad + " = ".len() + width > WIDTH
                {
                    aligned[i] = false;
                    changed = true;
                }
            }
            if !changed {
                return pads;
            }
        }
    }

    /// Whether statements ending at `prev_end` and starting at `start` will be printed
    /// on consecutive lines: no comment between gets its own line, and no blank line is
    /// kept (decided as [`Printer::statement_comments`] does).
    fn adjacent(&self, prev_end: u32, start: u32) -> bool {
        let first = self.comments.partition_point(|c| c.span.start < prev_end);
        let mut last_end = prev_end;
        // Only one comment can join a line: a second one (after a dropped `,`) gets its own.
        let mut line_has_code = true;
        for (index, comment) in self.comments.iter().enumerate().skip(first) {
            if comment.span.start >= start {
                break;
            }
            if !(line_has_code && self.trailing.get(index).copied().unwrap_or(false)) {
                return false;
            }
            line_has_code = false;
            last_end = last_end.max(comment.span.end);
        }
        !self.blank_between(Some(last_end), start)
    }

    /// The width of `value` printed on one line, or `None` if it needs line breaks.
    fn one_line_width(&mut self, value: &Expr) -> Option<usize> {
        let checkpoint = self.checkpoint();
        // Comments before the value belong to earlier entries, not yet printed.
        self.next_comment = self
            .comments
            .partition_point(|c| c.span.start < value.span.start);
        self.pending_breaks = 0;
        self.column = 0;
        self.one_line = true;
        self.one_line_failed = false;
        self.expr(value, 0);
        let width = (!self.one_line_failed && self.column <= WIDTH).then_some(self.column);
        self.restore(checkpoint);
        width
    }

    // ---- types --------------------------------------------------------------

    fn type_expr(&mut self, ty: &TypeExpr) {
        match &ty.kind {
            TypeExprKind::Named { module, name } => {
                let text = match module {
                    Some(module) => format!("{}.{}", module.name, name.name),
                    None => name.name.clone(),
                };
                self.token(ty.span.start, &text);
            }
            TypeExprKind::List(element) => {
                self.token(ty.span.start, "[");
                self.type_expr(element);
                self.token(ty.span.end.saturating_sub(1), "]");
            }
            TypeExprKind::Map(value) => {
                self.token(ty.span.start, "{String: ");
                self.type_expr(value);
                self.token(ty.span.end.saturating_sub(1), "}");
            }
            TypeExprKind::Optional(inner) => {
                self.type_expr(inner);
                self.token(ty.span.end.saturating_sub(1), "?");
            }
        }
    }

    // ---- expressions --------------------------------------------------------

    /// `reserve` is the width of what follows on the same line (a `,` after a list element).
    fn expr(&mut self, expr: &Expr, reserve: usize) {
        let start = expr.span.start;
        match &expr.kind {
            ExprKind::Int(value) => self.token(start, &int_literal(*value)),
            ExprKind::Float(value) => self.token(start, &float_literal(*value)),
            ExprKind::Bool(value) => self.token(start, if *value { "true" } else { "false" }),
            ExprKind::Null => self.token(start, "null"),
            ExprKind::Str(parts) => self.string(start, parts),
            ExprKind::UnitNumber { number, unit } => self.token(start, &format!("{number}{unit}")),
            ExprKind::List(elements) => {
                let close = closing_bracket(expr.span);
                self.breakable(start, elements.is_empty(), reserve, |printer, layout| {
                    printer.token(start, "[");
                    printer.elements(layout, elements, close, |p, element, reserve| {
                        p.expr(element, reserve)
                    });
                    printer.token(close, "]");
                });
            }
            ExprKind::Map(entries) => {
                let close = closing_bracket(expr.span);
                self.breakable(start, entries.is_empty(), reserve, |printer, layout| {
                    printer.token(start, "{");
                    let spaced = matches!(layout, Layout::OneLine) && !entries.is_empty();
                    if spaced {
                        printer.write(" ");
                    }
                    printer.elements(layout, entries, close, |p, (key, value), reserve| {
                        p.plain_string(key);
                        p.write(": ");
                        p.expr(value, reserve);
                    });
                    if spaced {
                        printer.write(" ");
                    }
                    printer.token(close, "}");
                });
            }
            ExprKind::Record { ty, body } => {
                if let Some(ty) = ty {
                    self.type_expr(ty);
                    self.write(" ");
                }
                self.block(body);
            }
            ExprKind::Name(name) => self.ident(name),
            ExprKind::Call(name, arguments) => {
                let close = closing_bracket(expr.span);
                self.breakable(start, arguments.is_empty(), reserve, |printer, layout| {
                    printer.ident(name);
                    printer.write("(");
                    printer.elements(layout, arguments, close, |p, argument, reserve| {
                        p.expr(argument, reserve)
                    });
                    printer.token(close, ")");
                });
            }
            ExprKind::Field(..) | ExprKind::Index(..) => self.postfix_chain(expr),
            ExprKind::Unary(..) => self.unary_chain(expr, reserve),
            ExprKind::Binary(..) => self.binary_chain(expr, reserve),
            ExprKind::If(..) => self.if_chain(expr, reserve),
            ExprKind::Comprehension {
                body,
                var,
                iter,
                filter,
            } => {
                let close = closing_bracket(expr.span);
                self.breakable(start, false, reserve, |printer, layout| {
                    printer.token(start, "[");
                    match layout {
                        Layout::OneLine => {
                            printer.expr(body, 0);
                            printer.write(" for ");
                            printer.ident(var);
                            printer.write(" in ");
                            printer.expr(iter, 0);
                            if let Some(filter) = filter {
                                printer.write(" if ");
                                printer.expr(filter, 0);
                            }
                        }
                        Layout::OnePerLine => {
                            printer.indent += 1;
                            printer.flush_comments(body.span.start);
                            printer.request_break(1);
                            printer.expr(body, 0);
                            printer.flush_comments(var.span.start);
                            printer.request_break(1);
                            printer.write("for ");
                            printer.ident(var);
                            printer.write(" in ");
                            printer.expr(iter, 0);
                            if let Some(filter) = filter {
                                printer.flush_comments(filter.span.start);
                                printer.request_break(1);
                                printer.write("if ");
                                printer.expr(filter, 0);
                            }
                            printer.flush_comments(close);
                            printer.indent -= 1;
                            printer.request_break(1);
                        }
                    }
                    printer.token(close, "]");
                });
            }
            ExprKind::Paren(inner) => {
                self.token(start, "(");
                self.expr(inner, 0);
                self.token(closing_bracket(expr.span), ")");
            }
        }
    }

    /// Print a bracketed expression on one line if it fits and nothing in it needs a
    /// line break; otherwise one element per line.
    fn breakable(
        &mut self,
        start: u32,
        empty: bool,
        reserve: usize,
        print: impl Fn(&mut Self, Layout),
    ) {
        if self.one_line {
            print(self, Layout::OneLine);
            return;
        }
        // Settle what comes before, so the attempt starts at its real column.
        self.flush_comments(start);
        if self.pending_breaks > 0 {
            self.break_lines();
        }
        let checkpoint = self.checkpoint();
        self.one_line = true;
        print(self, Layout::OneLine);
        self.one_line = false;
        let fits = self.in_interpolation > 0 || empty || self.column + reserve <= WIDTH;
        if !self.one_line_failed && fits {
            return;
        }
        self.restore(checkpoint);
        print(self, Layout::OnePerLine);
    }

    /// Comma-separated elements: `a, b` on one line, or each on its own line with a
    /// trailing comma, followed by the comments before `close` (the closing bracket).
    fn elements<T>(
        &mut self,
        layout: Layout,
        elements: &[T],
        close: u32,
        print: impl Fn(&mut Self, &T, usize),
    ) where
        T: Spanned,
    {
        match layout {
            Layout::OneLine => {
                for (index, element) in elements.iter().enumerate() {
                    if index > 0 {
                        self.write(", ");
                    }
                    print(self, element, 0);
                    // Stop a long attempt early; it has already failed.
                    if self.in_interpolation == 0 && self.column > WIDTH {
                        self.one_line_failed = true;
                        return;
                    }
                }
            }
            Layout::OnePerLine => {
                self.indent += 1;
                for element in elements {
                    self.flush_comments(element.start());
                    self.request_break(1);
                    print(self, element, ",".len());
                    self.write(",");
                }
                self.flush_comments(close);
                self.indent -= 1;
                self.request_break(1);
            }
        }
    }

    fn string(&mut self, start: u32, parts: &[StrPart]) {
        self.token(start, "\"");
        // Adjacent text parts are escaped together so `$` then `{` across them is seen.
        let mut text = String::new();
        for part in parts {
            match part {
                StrPart::Text(part) => text.push_str(part),
                StrPart::Interpolation(inner) => {
                    self.write(&escape(&text));
                    text.clear();
                    self.write("${");
                    self.in_interpolation += 1;
                    self.expr(inner, 0);
                    // Comments before the `}` stay inside the interpolation.
                    let close = self.next_token(expr_end(inner), b'}');
                    self.flush_comments(close.unwrap_or_else(|| expr_end(inner)));
                    self.write("}");
                    self.in_interpolation -= 1;
                }
            }
        }
        self.write(&escape(&text));
        self.write("\"");
    }

    /// The offset of the token after `after` (past whitespace and comments) if it is the
    /// punctuation `expected`: for tokens the tree has no position for.
    fn next_token(&self, after: u32, expected: u8) -> Option<u32> {
        let bytes = self.text.as_bytes();
        let mut at = after as usize;
        loop {
            match bytes.get(at) {
                Some(b' ' | b'\t' | b'\r' | b'\n') => at += 1,
                Some(b'/') if bytes.get(at + 1) == Some(&b'/') => {
                    at = self.text[at..].find('\n').map_or(bytes.len(), |n| at + n);
                }
                Some(&byte) if byte == expected => return Some(at as u32),
                _ => return None,
            }
        }
    }

    /// `a + b * c - d`: the left-leaning chain is walked in a loop, so long chains
    /// do not recurse once per operator.
    fn binary_chain(&mut self, expr: &Expr, reserve: usize) {
        let mut right_operands = Vec::new();
        let mut leftmost = expr;
        while let ExprKind::Binary(op, lhs, rhs) = &leftmost.kind {
            right_operands.push((*op, rhs.as_ref()));
            leftmost = lhs;
        }
        self.expr(leftmost, 0);
        let count = right_operands.len();
        for (index, (op, rhs)) in right_operands.into_iter().rev().enumerate() {
            self.write(" ");
            self.write(op.symbol());
            self.write(" ");
            self.expr(rhs, if index + 1 == count { reserve } else { 0 });
        }
    }

    fn unary_chain(&mut self, expr: &Expr, reserve: usize) {
        let mut operand = expr;
        while let ExprKind::Unary(op, inner) = &operand.kind {
            self.token(operand.span.start, op.symbol());
            operand = inner;
        }
        self.expr(operand, reserve);
    }

    fn postfix_chain(&mut self, expr: &Expr) {
        let mut postfixes = Vec::new();
        let mut base = expr;
        while let ExprKind::Field(inner, _) | ExprKind::Index(inner, _) = &base.kind {
            postfixes.push(base);
            base = inner;
        }
        if is_negative_literal(base) {
            // `-1.x` would read as `-(1.x)`.
            self.token(base.span.start, "(");
            self.expr(base, 0);
            self.write(")");
        } else {
            self.expr(base, 0);
        }
        for postfix in postfixes.into_iter().rev() {
            match &postfix.kind {
                ExprKind::Field(_, name) => {
                    // No space or comment may separate `.` from the name.
                    self.flush_comments(name.span.start);
                    self.write(".");
                    self.write(&name.name);
                }
                ExprKind::Index(_, index) => {
                    self.write("[");
                    self.expr(index, 0);
                    self.token(closing_bracket(postfix.span), "]");
                }
                _ => {}
            }
        }
    }

    /// `if a then b else if c then d else e`, with `else if` chains walked in a loop.
    fn if_chain(&mut self, expr: &Expr, reserve: usize) {
        let mut current = expr;
        while let ExprKind::If(condition, then, otherwise) = &current.kind {
            self.token(current.span.start, "if ");
            self.expr(condition, 0);
            self.write(" then ");
            self.expr(then, 0);
            self.write(" else ");
            current = otherwise;
        }
        self.expr(current, reserve);
    }

    fn ident(&mut self, ident: &Ident) {
        self.token(ident.span.start, &ident.name);
    }

    fn plain_string(&mut self, string: &PlainString) {
        self.token(string.span.start, &format!("\"{}\"", escape(&string.value)));
    }
}

/// Runs of adjacent aligned entries, each padded to its longest name.
fn run_pads(aligned: &[bool], adjacent: &[bool], name_widths: &[usize]) -> Vec<Option<usize>> {
    let mut pads = vec![None; aligned.len()];
    let mut start = 0;
    while start < aligned.len() {
        if !aligned[start] {
            start += 1;
            continue;
        }
        let mut end = start + 1;
        while end < aligned.len() && aligned[end] && adjacent[end] {
            end += 1;
        }
        let pad = name_widths[start..end].iter().copied().max().unwrap_or(0);
        pads[start..end].fill(Some(pad));
        start = end;
    }
    pads
}

/// Whether each comment had code before it on its line, so it stays a trailing comment.
fn trailing_comments(module: &Module, text: &str) -> Vec<bool> {
    let mut trailing: Vec<bool> = module
        .comments
        .iter()
        .map(|comment| code_before(text, comment.span.start))
        .collect();
    // A `///` comment ending the line of one declaration documents the next one. It moves
    // above that declaration, or the blank line put between them would detach it.
    for item in &module.items {
        if !matches!(item, Item::Import(_)) {
            let docs = doc_comments(text, &module.comments, item.span().start);
            for flag in &mut trailing[docs] {
                *flag = false;
            }
        }
    }
    trailing
}

fn code_before(text: &str, pos: u32) -> bool {
    let Some(before) = text.get(..pos as usize) else {
        return false;
    };
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    !before[line_start..].trim().is_empty()
}

/// The indices of the doc comments the parser attaches to a declaration starting at
/// `start`: the `///` comments directly above it, with at most a line break between.
fn doc_comments(text: &str, comments: &[Comment], start: u32) -> std::ops::Range<usize> {
    let end = comments.partition_point(|c| c.span.start < start);
    let mut first = end;
    let mut cursor = start as usize;
    while first > 0 {
        let comment = &comments[first - 1];
        let Some(between) = text.get(comment.span.end as usize..cursor) else {
            break;
        };
        if !comment.is_doc() || !between.trim().is_empty() || between.matches('\n').count() > 1 {
            break;
        }
        cursor = comment.span.start as usize;
        first -= 1;
    }
    first..end
}

/// Something with a source position, for placing the comments before it.
trait Spanned {
    fn start(&self) -> u32;
}

impl Spanned for Expr {
    fn start(&self) -> u32 {
        self.span.start
    }
}

impl Spanned for (PlainString, Expr) {
    fn start(&self) -> u32 {
        self.0.span.start
    }
}

/// The offset of the closing bracket of a node whose span ends with it.
fn closing_bracket(span: crate::span::Span) -> u32 {
    span.end.saturating_sub(1)
}

/// Where an expression's last token ends. The span of an `if` (and of anything ending
/// with one) can run over the whitespace and comments after it, so follow the rightmost
/// operand instead.
fn expr_end(expr: &Expr) -> u32 {
    let mut last = expr;
    loop {
        last = match &last.kind {
            ExprKind::If(_, _, operand)
            | ExprKind::Binary(_, _, operand)
            | ExprKind::Unary(_, operand) => operand,
            _ => return last.span.end,
        };
    }
}

// Rules that end with an expression or an optional part have spans that run over the
// trailing whitespace and comments, so ends are computed from their last token.

fn item_end(item: &Item) -> u32 {
    match item {
        Item::Import(import) => import
            .alias
            .as_ref()
            .map_or(import.path.span.end, |alias| alias.span.end),
        Item::Let(decl) => expr_end(&decl.value),
        Item::Alias(decl) => decl.ty.span.end,
        Item::Type(_) | Item::Enum(_) => item.span().end,
        Item::Channel(decl) => decl.body.span.end,
        Item::Cluster(decl) => decl.body.span.end,
    }
}

fn entry_end(entry: &Entry) -> u32 {
    match entry {
        Entry::Field { value, .. } => expr_end(value),
        Entry::Block { body, .. } => body.span.end,
        Entry::Spread { expr, .. } => expr_end(expr),
    }
}

fn member_start(member: &Member) -> u32 {
    match member {
        Member::Field(field) => field.span.start,
        Member::Check(check) => check.span.start,
    }
}

fn member_end(member: &Member) -> u32 {
    match member {
        Member::Field(field) => field.default.as_ref().map_or(field.ty.span.end, expr_end),
        Member::Check(check) => expr_end(&check.message),
    }
}

fn is_negative_literal(expr: &Expr) -> bool {
    match expr.kind {
        ExprKind::Int(value) => value < 0,
        ExprKind::Float(value) => value.is_sign_negative(),
        _ => false,
    }
}

fn int_literal(value: i64) -> String {
    // `9223372036854775808` does not fit in an i64, so the minimum cannot be negated.
    if value == i64::MIN {
        return format!("({} - 1)", i64::MIN + 1);
    }
    value.to_string()
}

/// A float literal that parses back to the same value. `{:?}` would write `1e20`, and the
/// grammar reads `1e20` (or `1.0e20`) as a number with a unit, so the digits are written
/// out in full (`Display` never uses an exponent) and always get a `.`.
fn float_literal(value: f64) -> String {
    if value.is_nan() {
        return "(0.0 / 0.0)".to_string();
    }
    if value.is_infinite() {
        let sign = if value < 0.0 { "-" } else { "" };
        return format!("({sign}1.0 / 0.0)");
    }
    let mut text = format!("{}", value.abs());
    if !text.contains('.') {
        text.push_str(".0");
    }
    if value.is_sign_negative() {
        text.insert(0, '-');
    }
    text
}

/// The inside of a string literal: `\"`, `\\`, `\n`, `\t`, `\r`, `\u{HEX}` for other
/// control characters, and `\$` where `${` would otherwise start an interpolation.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            '\r' => escaped.push_str("\\r"),
            '$' if chars.peek() == Some(&'{') => escaped.push_str("\\$"),
            // Other control characters (ESC, BEL, …) as `\u{1b}`: never raw in source.
            c if c.is_control() => escaped.extend(c.escape_unicode()),
            _ => escaped.push(c),
        }
    }
    escaped
}
