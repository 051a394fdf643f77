//! A hand-written recursive-descent parser for one top-level declaration, straight from
//! the text into the tree, for speed: pest's per-rule bookkeeping, its token queue and
//! the walk over its pairs were most of the time spent parsing.
//!
//! `grammar/flotilla.pest` stays the definition. This parser accepts only what it is
//! sure the grammar accepts, and then builds exactly the tree that pest's run and
//! `Builder` build (the same spans in every node); on anything else, a syntax error or a
//! literal with a problem included, it declines and pest decides. So it never reports
//! an error, and declining costs only speed.
//!
//! How it follows the PEG:
//! - Every function takes the position where its rule starts and returns the node with
//!   the position where pest's rule ends, or `None` to decline. At an ordered choice it
//!   looks ahead just far enough to know that the alternatives before the one it takes
//!   fail; an alternative that fails part-way is never backed out of, it declines.
//! - pest skips blanks and comments between the elements of a non-atomic rule, so a
//!   rule that ends with an optional part that did not match (`(":" ~ T)?`, `x*`) ends
//!   after the blanks that follow its last element, and an `expr` whose operator loop
//!   matched nothing ends after the blanks that follow its operand. Those blanks are in
//!   the spans of declarations, fields, `if` expressions and the steps' ends.
//! - Inside atomic rules (names, numbers, string text, `m.Foo`, `.field`) nothing is
//!   skipped.

use super::{Step, binary_op, precedence, within_depth};
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::*;
use crate::syntax::is_keyword;

/// `Some` of what pest's run gives for the declaration that `text[at..]` starts with
/// (`Some(None)`: only blanks and comments are left), or `None` when not sure.
pub(super) fn parse_step(file: FileId, text: &str, at: usize, first: bool) -> Option<Option<Step>> {
    let parser = Descent {
        file,
        text,
        bytes: text.as_bytes(),
        entries: Default::default(),
    };
    let mut start = parser.skip(at);
    // `first_item`: `SOI ~ "\u{FEFF}"? ~ (EOI | item)`, with blanks skipped around the mark.
    if first && parser.bytes.get(start..start + 3) == Some("\u{FEFF}".as_bytes()) {
        start = parser.skip(start + 3);
    }
    if start == text.len() {
        return Some(None);
    }
    let (item, end) = parser.item(start)?;
    Some(Some(Step {
        end,
        item: Some(item),
        problems: Vec::new(),
    }))
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

struct Descent<'a> {
    file: FileId,
    text: &'a str,
    bytes: &'a [u8],
    /// The entries of the blocks being read, innermost last: each block takes its own
    /// off the end, into a vector of exactly their number (a cluster has many blocks,
    /// and growing a vector entry by entry cost several allocations each).
    entries: std::cell::RefCell<Vec<Entry>>,
}

/// Where an expression's operator loop (`(postfix | infix ~ operand)*`) is.
struct Cursor {
    /// Where the last element read ends, blanks after it not included.
    at: usize,
    /// Whether the loop matched at least once (then the `expr` ends at `at`, else after
    /// the blanks that follow).
    looped: bool,
}

impl Descent<'_> {
    /// The byte at `at`, or 0 past the end (no token starts with 0, so a 0 in the text
    /// only makes this parser decline).
    fn byte(&self, at: usize) -> u8 {
        self.bytes.get(at).copied().unwrap_or(0)
    }

    /// Past the blanks and `//` comments at `at` (the grammar's `WHITESPACE*`).
    fn skip(&self, mut at: usize) -> usize {
        loop {
            match self.byte(at) {
                b' ' | b'\n' | b'\t' | b'\r' => at += 1,
                b'/' if self.byte(at + 1) == b'/' => {
                    at = line_end(self.bytes, at + 2);
                }
                _ => return at,
            }
        }
    }

    /// Where the run of name characters starting at `at` ends.
    fn word_end(&self, mut at: usize) -> usize {
        while is_ident_char(self.byte(at)) {
            at += 1;
        }
        at
    }

    /// The text from `start` to `end` (both at ASCII bytes, so on character boundaries).
    fn slice(&self, start: usize, end: usize) -> &str {
        self.text.get(start..end).unwrap_or_default()
    }

    /// Whether the keyword `word` (the grammar's `kw_…`: not followed by a name
    /// character) is at `at`.
    fn keyword(&self, at: usize, word: &str) -> bool {
        self.bytes.get(at..at + word.len()) == Some(word.as_bytes())
            && !is_ident_char(self.byte(at + word.len()))
    }

    /// `token` at `at`: where it ends.
    fn token(&self, at: usize, token: u8) -> Option<usize> {
        (self.byte(at) == token).then_some(at + 1)
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(start, end)
    }

    /// `ident`: a name that is not a keyword.
    fn ident(&self, at: usize) -> Option<(Ident, usize)> {
        if !is_ident_start(self.byte(at)) {
            return None;
        }
        let end = self.word_end(at);
        let name = self.slice(at, end);
        if is_keyword(name) {
            return None;
        }
        let ident = Ident {
            name: name.to_string(),
            span: self.span(at, end),
        };
        Some((ident, end))
    }

    /// `type_name`: a name that starts with a capital.
    fn type_name(&self, at: usize) -> Option<(Ident, usize)> {
        if !self.byte(at).is_ascii_uppercase() {
            return None;
        }
        let end = self.word_end(at);
        let ident = Ident {
            name: self.slice(at, end).to_string(),
            span: self.span(at, end),
        };
        Some((ident, end))
    }

    // ---- declarations --------------------------------------------------------

    fn item(&self, at: usize) -> Option<(Item, usize)> {
        match self.slice(at, self.word_end(at)) {
            "import" => self.import(at),
            "type" => self.type_or_alias(at),
            "enum" => self.enum_decl(at),
            "let" => self.let_decl(at),
            "channel" => {
                let (name, end) = self.ident(self.skip(at + "channel".len()))?;
                let (body, end) = self.block(self.skip(end))?;
                let span = self.span(at, end);
                let doc = None;
                Some((
                    Item::Channel(ChannelDecl {
                        doc,
                        name,
                        body,
                        span,
                    }),
                    end,
                ))
            }
            "cluster" => {
                let (id, end) = self.plain_string(self.skip(at + "cluster".len()))?;
                let (body, end) = self.block(self.skip(end))?;
                let span = self.span(at, end);
                let doc = None;
                Some((
                    Item::Cluster(ClusterDecl {
                        doc,
                        id,
                        body,
                        span,
                    }),
                    end,
                ))
            }
            _ => None,
        }
    }

    /// `kw_import ~ plain_string ~ (kw_as ~ ident)?`
    fn import(&self, at: usize) -> Option<(Item, usize)> {
        let (path, end) = self.plain_string(self.skip(at + "import".len()))?;
        let mut end = self.skip(end);
        let mut alias = None;
        if self.keyword(end, "as") {
            let (name, name_end) = self.ident(self.skip(end + "as".len()))?;
            alias = Some(name);
            end = name_end;
        }
        let span = self.span(at, end);
        Some((Item::Import(Import { path, alias, span }), end))
    }

    /// `kw_let ~ ident ~ (":" ~ type_expr)? ~ "=" ~ expr`
    fn let_decl(&self, at: usize) -> Option<(Item, usize)> {
        let (name, end) = self.ident(self.skip(at + "let".len()))?;
        let mut next = self.skip(end);
        let mut ty = None;
        if let Some(colon) = self.token(next, b':') {
            let (t, end) = self.type_expr(self.skip(colon))?;
            ty = Some(t);
            next = self.skip(end);
        }
        let equals = self.token(next, b'=')?;
        let (value, end) = self.expr(self.skip(equals))?;
        let span = self.span(at, end);
        let doc = None;
        Some((
            Item::Let(LetDecl {
                doc,
                name,
                ty,
                value,
                span,
            }),
            end,
        ))
    }

    /// `alias_decl` (`kw_type ~ type_name ~ "=" ~ type_expr`), tried first, or
    /// `type_decl` (`kw_type ~ type_name ~ "{" ~ (check_decl | field_decl)* ~ "}"`).
    fn type_or_alias(&self, at: usize) -> Option<(Item, usize)> {
        let (name, end) = self.type_name(self.skip(at + "type".len()))?;
        let next = self.skip(end);
        let doc = None;
        if let Some(equals) = self.token(next, b'=') {
            let (ty, end) = self.type_expr(self.skip(equals))?;
            let span = self.span(at, end);
            return Some((
                Item::Alias(AliasDecl {
                    doc,
                    name,
                    ty,
                    span,
                }),
                end,
            ));
        }
        let mut next = self.skip(self.token(next, b'{')?);
        let mut members = Vec::new();
        while self.byte(next) != b'}' {
            let (member, end) = if self.keyword(next, "check") {
                let (check, end) = self.check_decl(next)?;
                (Member::Check(check), end)
            } else {
                let (field, end) = self.field_decl(next)?;
                (Member::Field(field), end)
            };
            members.push(member);
            next = self.skip(end);
        }
        let end = next + 1;
        let span = self.span(at, end);
        Some((
            Item::Type(TypeDecl {
                doc,
                name,
                members,
                span,
            }),
            end,
        ))
    }

    /// `kw_check ~ expr ~ ":" ~ string`
    fn check_decl(&self, at: usize) -> Option<(CheckDecl, usize)> {
        let (condition, end) = self.expr(self.skip(at + "check".len()))?;
        let colon = self.token(self.skip(end), b':')?;
        let (message, end) = self.string(self.skip(colon))?;
        let span = self.span(at, end);
        Some((
            CheckDecl {
                condition,
                message,
                span,
            },
            end,
        ))
    }

    /// `attribute* ~ ident ~ ":" ~ type_expr ~ ("=" ~ expr)?`
    fn field_decl(&self, at: usize) -> Option<(FieldDecl, usize)> {
        let mut next = at;
        let mut attributes = Vec::new();
        while self.byte(next) == b'@' {
            let (attribute, end) = self.attribute(next)?;
            attributes.push(attribute);
            next = self.skip(end);
        }
        let (name, end) = self.ident(next)?;
        let colon = self.token(self.skip(end), b':')?;
        let (ty, end) = self.type_expr(self.skip(colon))?;
        let mut end = self.skip(end);
        let mut default = None;
        if let Some(equals) = self.token(end, b'=') {
            let (value, value_end) = self.expr(self.skip(equals))?;
            default = Some(value);
            end = value_end;
        }
        let span = self.span(at, end);
        let doc = None;
        let field = FieldDecl {
            doc,
            attributes,
            name,
            ty,
            default,
            span,
        };
        Some((field, end))
    }

    /// `"@" ~ ident ~ ("(" ~ plain_string ~ ")")?`
    fn attribute(&self, at: usize) -> Option<(Attribute, usize)> {
        let (name, end) = self.ident(self.skip(at + 1))?;
        let mut end = self.skip(end);
        let mut argument = None;
        if let Some(open) = self.token(end, b'(') {
            let (string, string_end) = self.plain_string(self.skip(open))?;
            argument = Some(string);
            end = self.token(self.skip(string_end), b')')?;
        }
        let span = self.span(at, end);
        Some((
            Attribute {
                name,
                argument,
                span,
            },
            end,
        ))
    }

    /// `kw_enum ~ type_name ~ "{" ~ (variant ~ ","?)* ~ "}"`
    fn enum_decl(&self, at: usize) -> Option<(Item, usize)> {
        let (name, end) = self.type_name(self.skip(at + "enum".len()))?;
        let mut next = self.skip(self.token(self.skip(end), b'{')?);
        let mut variants = Vec::new();
        while self.byte(next) != b'}' {
            let (name, end) = self.ident(next)?;
            variants.push(Variant { doc: None, name });
            next = self.skip(end);
            if let Some(comma) = self.token(next, b',') {
                next = self.skip(comma);
            }
        }
        let end = next + 1;
        let span = self.span(at, end);
        let doc = None;
        Some((
            Item::Enum(EnumDecl {
                doc,
                name,
                variants,
                span,
            }),
            end,
        ))
    }

    // ---- types ---------------------------------------------------------------

    /// `type_atom ~ optional_mark?`. Without the mark, the rule ends after the blanks
    /// that follow the atom, whose own span ends at its last character.
    fn type_expr(&self, at: usize) -> Option<(TypeExpr, usize)> {
        let (kind, atom_end) = match self.byte(at) {
            b'[' => {
                let (inner, end) = self.type_expr(self.skip(at + 1))?;
                let end = self.token(self.skip(end), b']')?;
                (TypeExprKind::List(Box::new(inner)), end)
            }
            b'{' => {
                let (key, end) = self.type_name(self.skip(at + 1))?;
                // Any other key type is a problem (E0011), which pest's run reports.
                if key.name != "String" {
                    return None;
                }
                let colon = self.token(self.skip(end), b':')?;
                let (value, end) = self.type_expr(self.skip(colon))?;
                let end = self.token(self.skip(end), b'}')?;
                (TypeExprKind::Map(Box::new(value)), end)
            }
            _ => self.named_type(at)?,
        };
        let atom = TypeExpr {
            kind,
            span: self.span(at, atom_end),
        };
        let after = self.skip(atom_end);
        match self.token(after, b'?') {
            Some(end) => {
                let optional = TypeExpr {
                    kind: TypeExprKind::Optional(Box::new(atom)),
                    span: self.span(at, end),
                };
                Some((optional, end))
            }
            None => Some((atom, after)),
        }
    }

    /// `named_type`, `(ident ~ ".")? ~ type_name` with nothing between: `None` exactly
    /// when the grammar's rule fails (a record is then not tried further).
    fn named_type(&self, at: usize) -> Option<(TypeExprKind, usize)> {
        if let Some((module, end)) = self.ident(at)
            && self.byte(end) == b'.'
        {
            // Once `m.` matched, the rule needs a type name right after it.
            let (name, end) = self.type_name(end + 1)?;
            let module = Some(module);
            return Some((TypeExprKind::Named { module, name }, end));
        }
        let (name, end) = self.type_name(at)?;
        Some((TypeExprKind::Named { module: None, name }, end))
    }

    // ---- blocks --------------------------------------------------------------

    /// `"{" ~ (entry ~ ","?)* ~ "}"`
    fn block(&self, at: usize) -> Option<(Block, usize)> {
        let mut next = self.skip(self.token(at, b'{')?);
        let first = self.entries.borrow().len();
        while self.byte(next) != b'}' {
            let (entry, end) = self.entry(next)?;
            self.entries.borrow_mut().push(entry);
            next = self.skip(end);
            if let Some(comma) = self.token(next, b',') {
                next = self.skip(comma);
            }
        }
        let entries: Vec<Entry> = self.entries.borrow_mut().drain(first..).collect();
        let end = next + 1;
        Some((
            Block {
                entries,
                span: self.span(at, end),
            },
            end,
        ))
    }

    /// `spread | field_assign | nested_block`
    fn entry(&self, at: usize) -> Option<(Entry, usize)> {
        if self.bytes.get(at..at + 3) == Some(b"...") {
            let (expr, end) = self.expr(self.skip(at + 3))?;
            let span = self.span(at, end);
            return Some((Entry::Spread { expr, span }, end));
        }
        let (name, end) = self.ident(at)?;
        let next = self.skip(end);
        match self.byte(next) {
            b'=' => {
                let (value, end) = self.expr(self.skip(next + 1))?;
                let span = self.span(at, end);
                Some((Entry::Field { name, value, span }, end))
            }
            b'"' | b'{' => {
                let mut next = next;
                let mut label = None;
                if self.byte(next) == b'"' {
                    let (string, end) = self.plain_string(next)?;
                    label = Some(string);
                    next = self.skip(end);
                }
                let (body, end) = self.block(next)?;
                let span = self.span(at, end);
                Some((
                    Entry::Block {
                        name,
                        label,
                        body,
                        span,
                    },
                    end,
                ))
            }
            _ => None,
        }
    }

    // ---- expressions ---------------------------------------------------------

    /// `operand ~ (postfix | infix ~ operand)*`, with the operators' precedence applied
    /// as `Builder` applies it.
    fn expr(&self, at: usize) -> Option<(Expr, usize)> {
        let mut cursor = Cursor { at, looped: false };
        let expr = self.binary(&mut cursor, 0)?;
        let end = if cursor.looped {
            cursor.at
        } else {
            self.skip(cursor.at)
        };
        // Too deep is a problem, which pest's run reports.
        let expr = within_depth(self.file, expr).ok()?;
        Some((expr, end))
    }

    /// Operands joined by infix operators of at least precedence `min`, left to right
    /// (precedence climbing, as `Builder::binary`).
    fn binary(&self, cursor: &mut Cursor, min: u8) -> Option<Expr> {
        let mut lhs = self.operand(cursor)?;
        loop {
            let at = self.skip(cursor.at);
            let Some(len) = self.infix(at) else {
                return Some(lhs);
            };
            let op = binary_op(self.slice(at, at + len));
            if precedence(op) < min {
                return Some(lhs);
            }
            cursor.looped = true;
            cursor.at = self.skip(at + len);
            let rhs = self.binary(cursor, precedence(op) + 1)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
    }

    /// The length of the `infix` operator at `at` (longer ones first where they start
    /// alike, as the grammar orders them).
    fn infix(&self, at: usize) -> Option<usize> {
        let pair = [self.byte(at), self.byte(at + 1)];
        match pair {
            [b'?', b'?'] | [b'|', b'|'] | [b'&', b'&'] | [b'=', b'='] | [b'!', b'='] => Some(2),
            [b'<', b'='] | [b'>', b'='] => Some(2),
            [b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%', _] => Some(1),
            _ => None,
        }
    }

    /// `prefix* ~ primary` and the postfix operators after the primary: postfix binds
    /// tighter than prefix (`-a.b` is `-(a.b)`).
    fn operand(&self, cursor: &mut Cursor) -> Option<Expr> {
        let at = cursor.at;
        let op = match self.byte(at) {
            b'-' => UnaryOp::Neg,
            b'!' => UnaryOp::Not,
            _ => return self.postfixed(cursor),
        };
        // The scanner limits runs of prefix operators, so this recursion is shallow.
        cursor.at = self.skip(at + 1);
        let operand = self.operand(cursor)?;
        let span = self.span(at, at + 1).to(operand.span);
        Some(Expr {
            kind: ExprKind::Unary(op, Box::new(operand)),
            span,
        })
    }

    /// A primary and the `.field` and `[index]` operators after it.
    fn postfixed(&self, cursor: &mut Cursor) -> Option<Expr> {
        let (mut expr, end) = self.primary(cursor.at)?;
        cursor.at = end;
        loop {
            let at = self.skip(cursor.at);
            let base = expr.span;
            let (kind, end) = match self.byte(at) {
                // `field_access`, `"." ~ ident` with nothing between; if no name
                // follows, the loop ends before the `.` (`a = b ...c`).
                b'.' => {
                    let Some((name, end)) = self.ident(at + 1) else {
                        return Some(expr);
                    };
                    (ExprKind::Field(Box::new(expr), name), end)
                }
                b'[' => {
                    let (index, end) = self.expr(self.skip(at + 1))?;
                    let end = self.token(self.skip(end), b']')?;
                    (ExprKind::Index(Box::new(expr), Box::new(index)), end)
                }
                _ => return Some(expr),
            };
            expr = Expr {
                kind,
                span: base.to(self.span(at, end)),
            };
            cursor.at = end;
            cursor.looped = true;
        }
    }

    /// `primary`, in the grammar's order where alternatives start alike: `map` before
    /// `record` (`{}` is a map), and `record`, `if_expr`, `boolean`, `null` before
    /// `call` before `name`.
    fn primary(&self, at: usize) -> Option<(Expr, usize)> {
        let (kind, end) = match self.byte(at) {
            b'"' => return self.string(at),
            b'0'..=b'9' => self.number(at)?,
            b'{' => match self.byte(self.skip(at + 1)) {
                // A map entry starts with a string, and `{}` is a map.
                b'"' | b'}' => self.map(at)?,
                _ => {
                    let (body, end) = self.block(at)?;
                    (ExprKind::Record { ty: None, body }, end)
                }
            },
            b'[' => self.list(at)?,
            b'(' => {
                let (inner, end) = self.expr(self.skip(at + 1))?;
                let end = self.token(self.skip(end), b')')?;
                (ExprKind::Paren(Box::new(inner)), end)
            }
            b if is_ident_start(b) => return self.word(at),
            _ => return None,
        };
        let span = self.span(at, end);
        Some((Expr { kind, span }, end))
    }

    /// The primaries that start with a name: a record with a type (`Foo {…}`,
    /// `m.Foo {…}`), `if`, `true`/`false`, `null`, a call, a name.
    fn word(&self, at: usize) -> Option<(Expr, usize)> {
        // `record`: `named_type ~ block`. Without a block after it, `m.Foo` is the
        // name `m` and then `.Foo`.
        if let Some((ty, ty_end)) = self.named_type(at) {
            let open = self.skip(ty_end);
            if self.byte(open) == b'{' {
                let (body, end) = self.block(open)?;
                let ty = Some(Box::new(TypeExpr {
                    kind: ty,
                    span: self.span(at, ty_end),
                }));
                let expr = Expr {
                    kind: ExprKind::Record { ty, body },
                    span: self.span(at, end),
                };
                return Some((expr, end));
            }
        }
        let word_end = self.word_end(at);
        let (kind, end) = match self.slice(at, word_end) {
            "if" => return self.if_expr(at),
            "true" => (ExprKind::Bool(true), word_end),
            "false" => (ExprKind::Bool(false), word_end),
            "null" => (ExprKind::Null, word_end),
            _ => {
                let (name, end) = self.ident(at)?;
                match self.token(self.skip(end), b'(') {
                    Some(open) => self.call(name, open)?,
                    None => (ExprKind::Name(name), end),
                }
            }
        };
        let span = self.span(at, end);
        Some((Expr { kind, span }, end))
    }

    /// `kw_if ~ expr ~ kw_then ~ expr ~ kw_else ~ expr`: it ends where its last `expr`
    /// ends, blanks after it included when that has no operator.
    fn if_expr(&self, at: usize) -> Option<(Expr, usize)> {
        let (condition, end) = self.expr(self.skip(at + "if".len()))?;
        let then = self.skip(end);
        if !self.keyword(then, "then") {
            return None;
        }
        let (yes, end) = self.expr(self.skip(then + "then".len()))?;
        let otherwise = self.skip(end);
        if !self.keyword(otherwise, "else") {
            return None;
        }
        let (no, end) = self.expr(self.skip(otherwise + "else".len()))?;
        let expr = Expr {
            kind: ExprKind::If(Box::new(condition), Box::new(yes), Box::new(no)),
            span: self.span(at, end),
        };
        Some((expr, end))
    }

    /// The arguments of `ident ~ "(" ~ (expr ~ ("," ~ expr)* ~ ","?)? ~ ")"`, from
    /// after the `(`.
    fn call(&self, name: Ident, open: usize) -> Option<(ExprKind, usize)> {
        let (args, end) = self.exprs(open, b')', Vec::new())?;
        Some((ExprKind::Call(name, args), end))
    }

    /// `(expr ~ ("," ~ expr)* ~ ","?)? ~ close`, from `at`: `items` and the
    /// expressions, and where `close` ends.
    fn exprs(&self, at: usize, close: u8, mut items: Vec<Expr>) -> Option<(Vec<Expr>, usize)> {
        let mut next = self.skip(at);
        while self.byte(next) != close {
            let (item, end) = self.expr(next)?;
            items.push(item);
            next = self.skip(end);
            match self.token(next, b',') {
                Some(comma) => next = self.skip(comma),
                None if self.byte(next) == close => {}
                None => return None,
            }
        }
        // Sized exactly, as `Builder` sizes them: a fleet holds many short lists.
        items.shrink_to_fit();
        Some((items, next + 1))
    }

    /// `"[" ~ (expr ~ (comprehension | ("," ~ expr)* ~ ","?))? ~ "]"`, with
    /// `comprehension = kw_for ~ ident ~ kw_in ~ expr ~ (kw_if ~ expr)?`.
    fn list(&self, at: usize) -> Option<(ExprKind, usize)> {
        let first = self.skip(at + 1);
        if self.byte(first) != b']' {
            let (body, end) = self.expr(first)?;
            let next = self.skip(end);
            if self.keyword(next, "for") {
                return self.comprehension(body, next);
            }
            let (items, end) = match self.token(next, b',') {
                Some(comma) => self.exprs(comma, b']', vec![body])?,
                None => (vec![body], self.token(next, b']')?),
            };
            return Some((ExprKind::List(items), end));
        }
        Some((ExprKind::List(Vec::new()), first + 1))
    }

    fn comprehension(&self, body: Expr, at: usize) -> Option<(ExprKind, usize)> {
        let (var, end) = self.ident(self.skip(at + "for".len()))?;
        let within = self.skip(end);
        if !self.keyword(within, "in") {
            return None;
        }
        let (iter, end) = self.expr(self.skip(within + "in".len()))?;
        let mut next = self.skip(end);
        let mut filter = None;
        if self.keyword(next, "if") {
            let (condition, end) = self.expr(self.skip(next + "if".len()))?;
            filter = Some(Box::new(condition));
            next = self.skip(end);
        }
        let end = self.token(next, b']')?;
        let kind = ExprKind::Comprehension {
            body: Box::new(body),
            var,
            iter: Box::new(iter),
            filter,
        };
        Some((kind, end))
    }

    /// `"{" ~ (map_entry ~ ("," ~ map_entry)* ~ ","?)? ~ "}"`, with
    /// `map_entry = plain_string ~ ":" ~ expr`.
    fn map(&self, at: usize) -> Option<(ExprKind, usize)> {
        let mut next = self.skip(at + 1);
        let mut entries = Vec::new();
        while self.byte(next) != b'}' {
            let (key, end) = self.plain_string(next)?;
            let colon = self.token(self.skip(end), b':')?;
            let (value, end) = self.expr(self.skip(colon))?;
            entries.push((key, value));
            next = self.skip(end);
            match self.token(next, b',') {
                Some(comma) => next = self.skip(comma),
                None if self.byte(next) == b'}' => {}
                None => return None,
            }
        }
        entries.shrink_to_fit();
        Some((ExprKind::Map(entries), next + 1))
    }
}

/// Where the line that `at` is on ends (at its `\n`, or the end of the text).
fn line_end(bytes: &[u8], at: usize) -> usize {
    bytes
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        .map_or(bytes.len(), |n| at + n)
}

mod literals;
#[cfg(test)]
mod tests;
