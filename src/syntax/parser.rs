//! pest pairs → AST, with literal validation and friendly syntax errors.

use std::iter::Peekable;

use pest::Parser as _;
use pest::iterators::{Pair, Pairs};

use super::ast::*;
use super::scan::MAX_EXPRESSION_DEPTH;
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::FileId;
use crate::span::Span;

mod descent;
mod errors;

pub(super) use errors::syntax_error_in;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/flotilla.pest"]
struct Grammar;

type Result<T> = std::result::Result<T, Diagnostic>;

/// Parse `text[base..]` as a sequence of items. Spans are offsets into `text`.
pub(super) fn parse_items(
    file: FileId,
    full_text: &str,
    text: &str,
    base: usize,
) -> std::result::Result<(Vec<Item>, Vec<Diagnostic>), Diagnostic> {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let mut at = base;
    loop {
        match parse_step(file, text, at, at == base) {
            Ok(Some(step)) => {
                items.extend(step.item);
                problems.extend(step.problems);
                at = step.end;
            }
            Ok(None) => break,
            Err(SyntaxError) => return Err(syntax_error_in(file, full_text, text, base)),
        }
    }
    Ok((items, problems))
}

/// One declaration of [`parse_items`], with the blanks and comments before it.
pub(super) struct Step {
    /// Where the declaration's last token ends: where the next step starts.
    pub end: usize,
    /// `None` when building it found a problem (then in `problems`).
    pub item: Option<Item>,
    /// Literal errors (bad escape, bad unit…) found in it.
    pub problems: Vec<Diagnostic>,
}

/// `text[at..]` does not start with blanks and a declaration, nor only blanks.
pub(super) struct SyntaxError;

/// Parse the declaration that `text[at..]` starts with, after blanks and comments
/// (`first`: at the start of the file, where a byte order mark may open it); `None`
/// when only blanks are left. The hand-written parser (`descent`) goes first; what it
/// is not sure of, pest's run decides.
pub(super) fn parse_step(
    file: FileId,
    text: &str,
    at: usize,
    first: bool,
) -> std::result::Result<Option<Step>, SyntaxError> {
    #[cfg(test)]
    let descent_on = !PEST_ONLY.get();
    #[cfg(not(test))]
    let descent_on = true;
    if descent_on && let Some(parsed) = descent::parse_step(file, text, at, first) {
        return Ok(parsed);
    }
    pest_step(file, text, at, first)
}

#[cfg(test)]
thread_local! {
    /// Tests compare the hand-written parser with pest's run alone, on this thread.
    pub(super) static PEST_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Both parsers on each declaration of `text`, from the start, if the scanner lets it
/// through to them (for the differential fuzz target, `fuzz/fuzz_targets/descent.rs`):
/// panics where the hand-written parser accepts what pest rejects, or gives another
/// step. Run it on a thread with the parser's stack.
#[cfg(fuzzing)]
pub fn compare_with_pest(file: FileId, text: &str) {
    if !super::scan::scan(file, text).fatal.is_empty() {
        return;
    }
    let mut at = 0;
    loop {
        let pest = pest_step(file, text, at, at == 0);
        if let Some(step) = descent::parse_step(file, text, at, at == 0) {
            assert_eq!(shown(&Ok(step)), shown(&pest), "at {at} of {text:?}");
        }
        match pest {
            Ok(Some(step)) => at = step.end,
            Ok(None) | Err(SyntaxError) => return,
        }
    }
}

/// What one step gave, in words: where it ends, the item and its problems. The two
/// parsers are compared by it (the tests, the fuzz target).
#[cfg(any(test, fuzzing))]
fn shown(step: &std::result::Result<Option<Step>, SyntaxError>) -> String {
    match step {
        Ok(Some(step)) => format!("end {} {:?} {:?}", step.end, step.item, step.problems),
        Ok(None) => "only blanks".to_string(),
        Err(SyntaxError) => "syntax error".to_string(),
    }
}

/// [`parse_step`] by one pest run (`first_item`, then `next_item` from where the last
/// one ended), which accepts what `file` accepts.
fn pest_step(
    file: FileId,
    text: &str,
    at: usize,
    first: bool,
) -> std::result::Result<Option<Step>, SyntaxError> {
    let rule = if first {
        Rule::first_item
    } else {
        Rule::next_item
    };
    let pairs = Grammar::parse(rule, &text[at..]).map_err(|_| SyntaxError)?;
    let step = pairs.into_iter().next().ok_or(SyntaxError)?;
    let end = at + step.as_span().end();
    let Some(item) = step.into_inner().find(|p| p.as_rule() != Rule::EOI) else {
        return Ok(None);
    };
    let mut builder = Builder {
        file,
        base: at,
        problems: Vec::new(),
    };
    let item = match builder.item(item) {
        Ok(item) => Some(item),
        Err(d) => {
            builder.problems.push(d);
            None
        }
    };
    Ok(Some(Step {
        end,
        item,
        problems: builder.problems,
    }))
}

struct Builder {
    file: FileId,
    base: usize,
    /// Literal errors (bad escape, bad unit…) that do not stop the parse.
    problems: Vec<Diagnostic>,
}

impl Builder {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.base + s.start(), self.base + s.end())
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn item(&mut self, pair: Pair<Rule>) -> Result<Item> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = children(pair);
        Ok(match rule {
            Rule::import_decl => {
                let path = self.plain_string(next(&mut inner))?;
                let alias = inner.next().map(|p| self.ident(p));
                Item::Import(Import { path, alias, span })
            }
            Rule::channel_decl => {
                let name = self.ident(next(&mut inner));
                let body = self.block(next(&mut inner))?;
                Item::Channel(ChannelDecl {
                    doc: None,
                    name,
                    body,
                    span,
                })
            }
            Rule::cluster_decl => {
                let id = self.plain_string(next(&mut inner))?;
                let body = self.block(next(&mut inner))?;
                Item::Cluster(ClusterDecl {
                    doc: None,
                    id,
                    body,
                    span,
                })
            }
            Rule::let_decl => {
                let name = self.ident(next(&mut inner));
                let mut ty = None;
                let mut value = None;
                for p in inner {
                    match p.as_rule() {
                        Rule::type_expr => ty = Some(self.type_expr(p)?),
                        _ => value = Some(self.expr(p)?),
                    }
                }
                Item::Let(LetDecl {
                    doc: None,
                    name,
                    ty,
                    value: required(value, "grammar: let has a value"),
                    span,
                })
            }
            Rule::type_decl => {
                let name = self.ident(next(&mut inner));
                let mut members = Vec::new();
                for p in inner {
                    members.push(match p.as_rule() {
                        Rule::check_decl => Member::Check(self.check_decl(p)?),
                        _ => Member::Field(self.field_decl(p)?),
                    });
                }
                Item::Type(TypeDecl {
                    doc: None,
                    name,
                    members,
                    span,
                })
            }
            Rule::alias_decl => {
                let name = self.ident(next(&mut inner));
                let ty = self.type_expr(next(&mut inner))?;
                Item::Alias(AliasDecl {
                    doc: None,
                    name,
                    ty,
                    span,
                })
            }
            Rule::enum_decl => {
                let name = self.ident(next(&mut inner));
                let variants = inner
                    .map(|v| Variant {
                        doc: None,
                        name: self.ident(required(children(v).next(), "grammar: variant name")),
                    })
                    .collect();
                Item::Enum(EnumDecl {
                    doc: None,
                    name,
                    variants,
                    span,
                })
            }
            other => unreachable!("grammar: unexpected item {other:?}"),
        })
    }

    fn check_decl(&mut self, pair: Pair<Rule>) -> Result<CheckDecl> {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let condition = self.expr(next(&mut inner))?;
        let message = self.string(next(&mut inner))?;
        Ok(CheckDecl {
            condition,
            message,
            span,
        })
    }

    fn field_decl(&mut self, pair: Pair<Rule>) -> Result<FieldDecl> {
        let span = self.span(&pair);
        let mut attributes = Vec::new();
        let mut name = None;
        let mut ty = None;
        let mut default = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::attribute => {
                    let span = self.span(&p);
                    let mut inner = children(p);
                    let name = self.ident(next(&mut inner));
                    let argument = match inner.next() {
                        Some(a) => Some(self.plain_string(a)?),
                        None => None,
                    };
                    attributes.push(Attribute {
                        name,
                        argument,
                        span,
                    });
                }
                Rule::ident => name = Some(self.ident(p)),
                Rule::type_expr => ty = Some(self.type_expr(p)?),
                _ => default = Some(self.expr(p)?),
            }
        }
        Ok(FieldDecl {
            doc: None,
            attributes,
            name: required(name, "grammar: field name"),
            ty: required(ty, "grammar: field type"),
            default,
            span,
        })
    }

    fn type_expr(&mut self, pair: Pair<Rule>) -> Result<TypeExpr> {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let atom = next(&mut inner);
        let atom_span = self.span(&atom);
        let kind = match atom.as_rule() {
            Rule::list_type => {
                TypeExprKind::List(Box::new(self.type_expr(next(&mut children(atom)))?))
            }
            Rule::map_type => {
                let mut parts = children(atom);
                let key = next(&mut parts);
                if key.as_str() != "String" {
                    return Err(Diagnostic::error(Code::E0011, "map keys must be `String`")
                        .at(self.file, self.span(&key), "expected `String`")
                        .help("write the map type as `{String: T}`"));
                }
                TypeExprKind::Map(Box::new(self.type_expr(next(&mut parts))?))
            }
            Rule::named_type => self.named_type(atom),
            other => unreachable!("grammar: type atom {other:?}"),
        };
        let atom = TypeExpr {
            kind,
            span: atom_span,
        };
        Ok(if inner.next().is_some() {
            TypeExpr {
                kind: TypeExprKind::Optional(Box::new(atom)),
                span,
            }
        } else {
            atom
        })
    }

    fn named_type(&self, pair: Pair<Rule>) -> TypeExprKind {
        let mut parts: Vec<Ident> = children(pair).map(|p| self.ident(p)).collect();
        let name = required(parts.pop(), "grammar: type name");
        TypeExprKind::Named {
            module: parts.pop(),
            name,
        }
    }

    fn block(&mut self, pair: Pair<Rule>) -> Result<Block> {
        let span = self.span(&pair);
        // Every child is an entry: sized exactly, a cluster's many blocks keep no
        // spare room.
        let inner = pair.into_inner();
        let mut entries = Vec::with_capacity(inner.len());
        for p in inner {
            let entry_span = self.span(&p);
            let rule = p.as_rule();
            let mut inner = children(p);
            entries.push(match rule {
                Rule::field_assign => Entry::Field {
                    name: self.ident(next(&mut inner)),
                    value: self.expr(next(&mut inner))?,
                    span: entry_span,
                },
                Rule::nested_block => {
                    let name = self.ident(next(&mut inner));
                    let mut label = None;
                    let mut body = None;
                    for p in inner {
                        match p.as_rule() {
                            Rule::plain_string => label = Some(self.plain_string(p)?),
                            _ => body = Some(self.block(p)?),
                        }
                    }
                    Entry::Block {
                        name,
                        label,
                        body: required(body, "grammar: nested block body"),
                        span: entry_span,
                    }
                }
                Rule::spread => Entry::Spread {
                    expr: self.expr(next(&mut inner))?,
                    span: entry_span,
                },
                other => unreachable!("grammar: block entry {other:?}"),
            });
        }
        Ok(Block { entries, span })
    }

    fn expr(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        debug_assert_eq!(pair.as_rule(), Rule::expr);
        let expr = self.binary(&mut pair.into_inner().peekable(), 0)?;
        within_depth(self.file, expr)
    }

    /// Operands joined by infix operators of at least precedence `min`, all
    /// left-associative (precedence climbing): an operator that binds tighter takes
    /// its right side by recursion, so the stack grows with the precedence levels,
    /// not with the length of a chain. As with pest's Pratt parser before, every
    /// operand is built even after one failed (its literal problems are reported),
    /// and the leftmost failure is returned.
    fn binary(&mut self, pairs: &mut Peekable<Pairs<'_, Rule>>, min: u8) -> Result<Expr> {
        let mut lhs = self.operand(pairs);
        // After an operand, only an infix operator can follow.
        while let Some(op) = pairs
            .peek()
            .map(|p| binary_op(p.as_str()))
            .filter(|op| precedence(*op) >= min)
        {
            pairs.next();
            let rhs = self.binary(pairs, precedence(op) + 1);
            lhs = match (lhs, rhs) {
                (Ok(lhs), Ok(rhs)) => {
                    let span = lhs.span.to(rhs.span);
                    Ok(Expr {
                        kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                        span,
                    })
                }
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            };
        }
        lhs
    }

    /// Prefix operators, a primary and its postfix operators. Postfix binds tighter
    /// than prefix (`-a.b` is `-(a.b)`), both tighter than any infix operator.
    fn operand(&mut self, pairs: &mut Peekable<Pairs<'_, Rule>>) -> Result<Expr> {
        let mut prefixes = Vec::new();
        let mut primary = None;
        for p in pairs.by_ref() {
            match p.as_rule() {
                Rule::neg | Rule::not => prefixes.push(p),
                _ => {
                    primary = Some(p);
                    break;
                }
            }
        }
        let mut operand = self.primary(required(primary, "grammar: an operand has a primary"));
        while let Some(op) =
            pairs.next_if(|p| matches!(p.as_rule(), Rule::field_access | Rule::index))
        {
            // A failed operand stays failed; its index expression is not built.
            operand = operand.and_then(|lhs| self.postfix(lhs, op));
        }
        for op in prefixes.into_iter().rev() {
            operand = operand.map(|rhs| {
                let span = self.span(&op).to(rhs.span);
                let op = match op.as_rule() {
                    Rule::neg => UnaryOp::Neg,
                    _ => UnaryOp::Not,
                };
                Expr {
                    kind: ExprKind::Unary(op, Box::new(rhs)),
                    span,
                }
            });
        }
        operand
    }

    /// `lhs.name` or `lhs[index]`.
    fn postfix(&mut self, lhs: Expr, op: Pair<Rule>) -> Result<Expr> {
        let span = lhs.span.to(self.span(&op));
        let kind = match op.as_rule() {
            Rule::field_access => {
                let name = self.ident(next(&mut children(op)));
                ExprKind::Field(Box::new(lhs), name)
            }
            _ => {
                let index = self.expr(next(&mut children(op)))?;
                ExprKind::Index(Box::new(lhs), Box::new(index))
            }
        };
        Ok(Expr { kind, span })
    }

    fn primary(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let kind = match rule {
            Rule::number => number_value(self.file, span, pair.as_str(), &mut self.problems),
            Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
            Rule::null => ExprKind::Null,
            Rule::string => return self.string(pair),
            Rule::name => ExprKind::Name(self.ident(next(&mut children(pair)))),
            Rule::paren => ExprKind::Paren(Box::new(self.expr(next(&mut children(pair)))?)),
            Rule::if_expr => {
                let mut inner = children(pair);
                let c = self.expr(next(&mut inner))?;
                let t = self.expr(next(&mut inner))?;
                let e = self.expr(next(&mut inner))?;
                ExprKind::If(Box::new(c), Box::new(t), Box::new(e))
            }
            Rule::list => {
                let inner = pair.into_inner();
                let mut items = Vec::with_capacity(inner.len());
                let mut comprehension = None;
                for p in inner {
                    match p.as_rule() {
                        Rule::comprehension => comprehension = Some(p),
                        _ => items.push(self.expr(p)?),
                    }
                }
                match comprehension {
                    None => ExprKind::List(items),
                    Some(tail) => {
                        let body = required(items.pop(), "grammar: a comprehension has a body");
                        let mut inner = children(tail);
                        let var = self.ident(next(&mut inner));
                        let iter = self.expr(next(&mut inner))?;
                        let filter = match inner.next() {
                            Some(p) => Some(Box::new(self.expr(p)?)),
                            None => None,
                        };
                        ExprKind::Comprehension {
                            body: Box::new(body),
                            var,
                            iter: Box::new(iter),
                            filter,
                        }
                    }
                }
            }
            Rule::map => {
                let inner = pair.into_inner();
                let mut entries = Vec::with_capacity(inner.len());
                for entry in inner {
                    let mut inner = children(entry);
                    let key = self.plain_string(next(&mut inner))?;
                    let value = self.expr(next(&mut inner))?;
                    entries.push((key, value));
                }
                ExprKind::Map(entries)
            }
            Rule::record => {
                let mut ty = None;
                let mut body = None;
                for p in children(pair) {
                    match p.as_rule() {
                        Rule::named_type => {
                            ty = Some(Box::new(TypeExpr {
                                span: self.span(&p),
                                kind: self.named_type(p),
                            }))
                        }
                        _ => body = Some(self.block(p)?),
                    }
                }
                ExprKind::Record {
                    ty,
                    body: required(body, "grammar: record body"),
                }
            }
            Rule::call => {
                let mut inner = pair.into_inner();
                let name = self.ident(next(&mut inner));
                let mut args = Vec::with_capacity(inner.len());
                for p in inner {
                    args.push(self.expr(p)?);
                }
                ExprKind::Call(name, args)
            }
            other => unreachable!("grammar: unexpected primary {other:?}"),
        };
        Ok(Expr { kind, span })
    }

    fn string(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let span = self.span(&pair);
        // Adjacent text and escapes merge into one part: most strings have one.
        let inner = pair.into_inner();
        let mut parts: Vec<StrPart> = Vec::with_capacity(inner.len().min(1));
        for p in inner {
            match p.as_rule() {
                Rule::interpolation => {
                    let e = self.expr(next(&mut children(p)))?;
                    parts.push(StrPart::Interpolation(e));
                }
                _ => {
                    let text = self.text_part(p);
                    match parts.last_mut() {
                        Some(StrPart::Text(last)) => last.push_str(&text),
                        _ => parts.push(StrPart::Text(text)),
                    }
                }
            }
        }
        parts.shrink_to_fit();
        Ok(Expr {
            kind: ExprKind::Str(parts),
            span,
        })
    }

    fn plain_string(&mut self, pair: Pair<Rule>) -> Result<PlainString> {
        let span = self.span(&pair);
        let value = children(pair).map(|p| self.text_part(p)).collect();
        Ok(PlainString { value, span })
    }

    fn text_part(&mut self, pair: Pair<Rule>) -> String {
        if pair.as_rule() != Rule::escape {
            return pair.as_str().to_string();
        }
        match unescape(self.file, self.span(&pair), pair.as_str()) {
            Ok(c) => c.to_string(),
            Err((problem, stand_in)) => {
                self.problems.push(problem);
                stand_in.to_string()
            }
        }
    }
}

fn next<'a>(pairs: &mut impl Iterator<Item = Pair<'a, Rule>>) -> Pair<'a, Rule> {
    required(pairs.next(), "grammar guarantees this child")
}

/// A child that the grammar (`flotilla.pest`) makes mandatory in the rule being built.
/// pest hands the parser only pairs whose rule matched in full, so every mandatory
/// child is present: `None` here would be a bug in the grammar or in this file, which
/// the parser tests (every rule, and generated programs) would show.
#[allow(clippy::expect_used)] // the invariant above: the grammar requires the child
fn required<T>(child: Option<T>, what: &'static str) -> T {
    child.expect(what)
}

/// Child pairs without keyword tokens (keywords are atomic rules so that `letx` is
/// not read as `let x`, which makes them show up as pairs).
fn children(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| {
        !matches!(
            p.as_rule(),
            Rule::kw_import
                | Rule::kw_as
                | Rule::kw_type
                | Rule::kw_enum
                | Rule::kw_let
                | Rule::kw_check
                | Rule::kw_if
                | Rule::kw_then
                | Rule::kw_else
                | Rule::kw_for
                | Rule::kw_in
                | Rule::kw_channel
                | Rule::kw_cluster
        )
    })
}

// What a literal's text means, for both parsers: the hand-written one (`descent`) and
// the pairs of pest's run (`Builder`).

/// The value of a number literal (the text the grammar's `number` matched). A literal
/// out of range or with an unknown unit is a problem, pushed to `problems`; its value
/// then stands in (0, NaN, the unit as written).
fn number_value(file: FileId, span: Span, text: &str, problems: &mut Vec<Diagnostic>) -> ExprKind {
    match number_kind(text) {
        NumberKind::Int => match without_separators(text).parse::<i64>() {
            Ok(n) => ExprKind::Int(n),
            Err(_) => {
                problems.push(
                    Diagnostic::error(Code::E0006, "integer literal is too large")
                        .at(file, span, "does not fit in a 64-bit integer")
                        .help(format!("integers range from {} to {}", i64::MIN, i64::MAX)),
                );
                ExprKind::Int(0)
            }
        },
        NumberKind::Float => {
            let value: f64 = without_separators(text).parse().unwrap_or(f64::NAN);
            if !value.is_finite() {
                problems.push(
                    Diagnostic::error(Code::E0006, "float literal is out of range").at(
                        file,
                        span,
                        "not a finite number",
                    ),
                );
            }
            ExprKind::Float(value)
        }
        NumberKind::Unit => {
            let split = required(
                text.find(|c: char| c.is_ascii_alphabetic()),
                "grammar: unit number has a unit",
            );
            let (number, unit) = text.split_at(split);
            if !is_known_unit(unit) {
                problems.push(bad_unit(file, span, split, unit));
            }
            ExprKind::UnitNumber {
                number: without_separators(number).into_owned(),
                unit: unit.to_string(),
            }
        }
    }
}

/// The character an escape (the text the grammar's `escape` matched: `\n`, `\u{1b}`…)
/// stands for. A bad one is a problem, with the text that stands in for it.
fn unescape(
    file: FileId,
    span: Span,
    escape: &str,
) -> std::result::Result<char, (Diagnostic, &str)> {
    let escaped = escape.get(1..).unwrap_or_default();
    match escaped {
        "\"" => Ok('"'),
        "\\" => Ok('\\'),
        "n" => Ok('\n'),
        "t" => Ok('\t'),
        "r" => Ok('\r'),
        "$" => Ok('$'),
        // `\u{1b}`: how control characters are written (the formatter and
        // import-registry write them so, never raw).
        code if code.starts_with("u{") => {
            let hex = code.get(2..code.len() - 1).unwrap_or_default();
            match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                Some(c) => Ok(c),
                None => Err((
                    Diagnostic::error(
                        Code::E0004,
                        format!("`\\{code}` is not a Unicode scalar value"),
                    )
                    .at(file, span, "not a valid escape")
                    .help("write a code point of at most 10FFFF, outside D800–DFFF"),
                    "",
                )),
            }
        }
        _ => Err((
            Diagnostic::error(Code::E0004, format!("unknown escape `\\{escaped}`"))
                .at(file, span, "not a valid escape")
                .help("valid escapes are \\\" \\\\ \\n \\t \\r \\$ and \\u{HEX}"),
            escaped,
        )),
    }
}

/// `expr`, unless its tree is more than [`MAX_EXPRESSION_DEPTH`] levels deep (then the
/// problem, and the tree is taken apart without recursion).
fn within_depth(file: FileId, expr: Expr) -> Result<Expr> {
    // Every level of a tree adds at least one byte to its text, so an expression
    // shorter than the limit (nearly all) cannot pass it and is not walked.
    if expr.span.range().len() > MAX_EXPRESSION_DEPTH && depth(&expr) > MAX_EXPRESSION_DEPTH {
        let span = expr.span;
        dismantle(expr);
        return Err(Diagnostic::error(
            Code::E0005,
            format!("expression nested more than {MAX_EXPRESSION_DEPTH} levels deep"),
        )
        .at(file, span, "this expression")
        .help("split the expression into several `let` bindings"));
    }
    Ok(expr)
}

/// Depth of an expression tree, counted without recursion (the tree may be deeper than
/// the stack allows; that is what this finds out).
fn depth(expr: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(expr, 1)];
    while let Some((e, level)) = stack.pop() {
        deepest = deepest.max(level);
        e.for_each_child(|child| stack.push((child, level + 1)));
    }
    deepest
}

/// Drop a tree that may be too deep for the recursive `Drop`, one node at a time.
fn dismantle(expr: Expr) {
    let mut stack = vec![expr];
    while let Some(mut e) = stack.pop() {
        match std::mem::replace(&mut e.kind, ExprKind::Null) {
            ExprKind::Field(inner, _) | ExprKind::Unary(_, inner) | ExprKind::Paren(inner) => {
                stack.push(*inner)
            }
            ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => stack.extend([*a, *b]),
            ExprKind::If(a, b, c) => stack.extend([*a, *b, *c]),
            ExprKind::Comprehension {
                body, iter, filter, ..
            } => {
                stack.extend([*body, *iter]);
                stack.extend(filter.map(|f| *f));
            }
            ExprKind::List(items) | ExprKind::Call(_, items) => stack.extend(items),
            ExprKind::Map(entries) => stack.extend(entries.into_iter().map(|(_, e)| e)),
            ExprKind::Str(parts) => stack.extend(parts.into_iter().filter_map(|p| match p {
                StrPart::Interpolation(e) => Some(e),
                StrPart::Text(_) => None,
            })),
            // Record bodies hold expressions that were each checked on their own.
            _ => {}
        }
    }
}

/// The operator an `infix` pair's text names.
fn binary_op(text: &str) -> BinaryOp {
    match text {
        "??" => BinaryOp::Coalesce,
        "||" => BinaryOp::Or,
        "&&" => BinaryOp::And,
        "==" => BinaryOp::Eq,
        "!=" => BinaryOp::Ne,
        "<" => BinaryOp::Lt,
        "<=" => BinaryOp::Le,
        ">" => BinaryOp::Gt,
        ">=" => BinaryOp::Ge,
        "+" => BinaryOp::Add,
        "-" => BinaryOp::Sub,
        "*" => BinaryOp::Mul,
        "/" => BinaryOp::Div,
        _ => BinaryOp::Rem,
    }
}

/// How tightly an infix operator binds: `??` loosest, then `||`, `&&`, comparisons,
/// `+ -`, and `* / %` tightest (prefix and postfix operators bind tighter still).
fn precedence(op: BinaryOp) -> u8 {
    use BinaryOp::*;
    match op {
        Coalesce => 1,
        Or => 2,
        And => 3,
        Eq | Ne | Lt | Le | Gt | Ge => 4,
        Add | Sub => 5,
        Mul | Div | Rem => 6,
    }
}

#[derive(Debug, PartialEq)]
enum NumberKind {
    Int,
    Float,
    /// A duration or quantity: digits with a unit (`90s`, `1.5Gi`).
    Unit,
}

/// Which kind of number `text`, matched by the grammar's `number`, is: a float has a
/// fraction and nothing after it but an exponent; any other letters are a unit.
fn number_kind(text: &str) -> NumberKind {
    match text.find(|c: char| c.is_ascii_alphabetic()) {
        None if text.contains('.') => NumberKind::Float,
        None => NumberKind::Int,
        Some(at) if text[..at].contains('.') && is_exponent(&text[at..]) => NumberKind::Float,
        Some(_) => NumberKind::Unit,
    }
}

/// A number's text without its `_` separators; most have none, and are not copied.
fn without_separators(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('_') {
        text.replace('_', "").into()
    } else {
        text.into()
    }
}

/// `e3`, `E-6`, `e+1_000`.
fn is_exponent(text: &str) -> bool {
    let Some(rest) = text.strip_prefix(['e', 'E']) else {
        return false;
    };
    let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_')
}

pub const DURATION_UNITS: [&str; 5] = ["ms", "s", "m", "h", "d"];
pub const QUANTITY_UNITS: [&str; 13] = [
    "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
];

fn is_known_unit(unit: &str) -> bool {
    DURATION_UNITS.contains(&unit) || QUANTITY_UNITS.contains(&unit)
}

fn bad_unit(file: FileId, span: Span, split: usize, unit: &str) -> Diagnostic {
    let unit_span = Span::new(span.start as usize + split, span.end as usize);
    let hint = match unit {
        "GB" | "MB" | "KB" | "TB" | "gb" | "mb" | "Gb" | "Mb" => {
            format!(
                "Kubernetes quantities use `{}i` (binary) or `{}` (decimal)",
                &unit[..1].to_uppercase(),
                &unit[..1].to_uppercase()
            )
        }
        "sec" | "min" | "hr" | "hours" | "days" | "w" | "y" => {
            "durations use `ms`, `s`, `m`, `h` or `d`".to_string()
        }
        _ => {
            "durations use ms, s, m, h, d; quantities use m, k, M, G, T, Ki, Mi, Gi, Ti".to_string()
        }
    };
    Diagnostic::error(
        Code::E0007,
        format!("unknown unit `{unit}` in number literal"),
    )
    .at(file, unit_span, "not a duration or quantity unit")
    .help(hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse;

    /// The tree of `let x = <text>`, fully parenthesised, each node with its text.
    fn tree(text: &str) -> String {
        let source = format!("let x = {text}");
        let (module, diagnostics) = parse(FileId(0), &source);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        let Some(Item::Let(l)) = module.items.first() else {
            panic!("no let")
        };
        show(&source, &l.value)
    }

    fn show(source: &str, e: &Expr) -> String {
        let inner = match &e.kind {
            ExprKind::Binary(op, a, b) => {
                format!("{:?} {} {}", op, show(source, a), show(source, b))
            }
            ExprKind::Unary(op, a) => format!("{:?} {}", op, show(source, a)),
            ExprKind::Field(a, name) => format!("Field {} .{}", show(source, a), name.name),
            ExprKind::Index(a, i) => format!("Index {} {}", show(source, a), show(source, i)),
            ExprKind::Paren(a) => format!("Paren {}", show(source, a)),
            ExprKind::Int(n) => format!("Int {n}"),
            ExprKind::Float(x) => format!("Float {x}"),
            ExprKind::UnitNumber { number, unit } => format!("Unit {number} {unit}"),
            ExprKind::Name(n) => format!("Name {}", n.name),
            other => format!("{other:?}"),
        };
        format!("({inner} `{}`)", &source[e.span.range()])
    }

    #[test]
    fn operators_bind_by_the_precedence_table_and_associate_left() {
        assert_eq!(
            tree("a - b + c"),
            "(Add (Sub (Name a `a`) (Name b `b`) `a - b`) (Name c `c`) `a - b + c`)"
        );
        assert_eq!(
            tree("a + b * c % d"),
            "(Add (Name a `a`) (Rem (Mul (Name b `b`) (Name c `c`) `b * c`) (Name d `d`) `b * c % d`) `a + b * c % d`)"
        );
        assert_eq!(
            tree("a ?? b || c && d == e <= f"),
            "(Coalesce (Name a `a`) (Or (Name b `b`) (And (Name c `c`) (Le (Eq (Name d `d`) (Name e `e`) `d == e`) (Name f `f`) `d == e <= f`) `c && d == e <= f`) `b || c && d == e <= f`) `a ?? b || c && d == e <= f`)"
        );
        assert_eq!(
            tree("a * b - c / d"),
            "(Sub (Mul (Name a `a`) (Name b `b`) `a * b`) (Div (Name c `c`) (Name d `d`) `c / d`) `a * b - c / d`)"
        );
        assert_eq!(
            tree("a != b > c < d >= e"),
            "(Ge (Lt (Gt (Ne (Name a `a`) (Name b `b`) `a != b`) (Name c `c`) `a != b > c`) (Name d `d`) `a != b > c < d`) (Name e `e`) `a != b > c < d >= e`)"
        );
    }

    #[test]
    fn postfix_binds_tighter_than_prefix_and_prefix_than_infix() {
        assert_eq!(
            tree("-a.b[0] * !c"),
            "(Mul (Neg (Index (Field (Name a `a`) .b `a.b`) (Int 0 `0`) `a.b[0]`) `-a.b[0]`) (Not (Name c `c`) `!c`) `-a.b[0] * !c`)"
        );
        assert_eq!(
            tree("- -(a + b).c"),
            "(Neg (Neg (Field (Paren (Add (Name a `a`) (Name b `b`) `a + b`) `(a + b)`) .c `(a + b).c`) `-(a + b).c`) `- -(a + b).c`)"
        );
        assert_eq!(
            tree("a[b - 1] + c"),
            "(Add (Index (Name a `a`) (Sub (Name b `b`) (Int 1 `1`) `b - 1`) `a[b - 1]`) (Name c `c`) `a[b - 1] + c`)"
        );
    }

    #[test]
    fn numbers_are_told_apart_by_their_text() {
        assert_eq!(tree("1_000"), "(Int 1000 `1_000`)");
        assert_eq!(tree("1.5"), "(Float 1.5 `1.5`)");
        assert_eq!(tree("1.5e3"), "(Float 1500 `1.5e3`)");
        assert_eq!(tree("2.0E-6"), "(Float 0.000002 `2.0E-6`)");
        assert_eq!(tree("1.5Gi"), "(Unit 1.5 Gi `1.5Gi`)");
        assert_eq!(tree("90s"), "(Unit 90 s `90s`)");
        assert_eq!(
            tree("3d - 1h"),
            "(Sub (Unit 3 d `3d`) (Unit 1 h `1h`) `3d - 1h`)"
        );
        assert_eq!(tree("1.x"), "(Field (Int 1 `1`) .x `1.x`)");
        // Without a fraction, an exponent is a unit (an unknown one).
        assert_eq!(number_kind("1e3"), NumberKind::Unit);
        assert_eq!(number_kind("1.5e3x"), NumberKind::Unit);
        assert_eq!(number_kind("1.5E"), NumberKind::Unit);
        assert_eq!(number_kind("1.5e+1_0"), NumberKind::Float);
    }

    #[test]
    fn a_name_may_start_with_a_keyword_but_not_be_one() {
        for name in [
            "asx",
            "checks",
            "elsewhere",
            "enums",
            "falsey",
            "forx",
            "iff",
            "imports",
            "in_",
            "index",
            "letx",
            "nullable",
            "thenx",
            "trueish",
            "typed",
            "a",
            "i",
            "t",
        ] {
            assert_eq!(tree(name), format!("(Name {name} `{name}`)"));
        }
        for keyword in [
            "as", "check", "else", "enum", "for", "if", "import", "in", "let", "then", "type",
        ] {
            let (_, diagnostics) = parse(FileId(0), &format!("let x = {keyword}"));
            assert_eq!(diagnostics.len(), 1, "`{keyword}` is not a name");
        }
        // Type names start with a capital, which no keyword does.
        let (_, diagnostics) = parse(FileId(0), "type If { Let: Int }\nlet x = If { Let = 1 }");
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    }

    #[test]
    fn string_text_runs_to_the_next_quote_escape_or_interpolation() {
        let source = r#"let x = "ab c\"d${y}e\nf""#;
        let (module, diagnostics) = parse(FileId(0), source);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        let Some(Item::Let(l)) = module.items.first() else {
            panic!("no let")
        };
        let ExprKind::Str(parts) = &l.value.kind else {
            panic!("not a string: {:?}", l.value.kind)
        };
        let parts: Vec<String> = parts
            .iter()
            .map(|p| match p {
                StrPart::Text(t) => format!("text {t:?}"),
                StrPart::Interpolation(e) => show(source, e),
            })
            .collect();
        assert_eq!(
            parts,
            ["text \"ab c\\\"d\"", "(Name y `y`)", "text \"e\\nf\""]
        );
    }

    #[test]
    fn literal_problems_of_every_operand_are_reported() {
        let (_, diagnostics) = parse(FileId(0), "let x = 99999999999999999999 + 2GB * 1.5Q");
        let codes: Vec<_> = diagnostics
            .iter()
            .map(|d| (d.code.as_str(), d.message.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                ("E0006", "integer literal is too large"),
                ("E0007", "unknown unit `GB` in number literal"),
                ("E0007", "unknown unit `Q` in number literal"),
            ]
        );
    }
}
