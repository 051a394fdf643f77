//! The syntax tree. Every node keeps its span; the tree is what the formatter prints,
//! what the resolver and type checker read, and what the evaluator walks.

use serde::Serialize;

use crate::span::Span;

/// One parsed `.flt` file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Module {
    pub items: Vec<Item>,
    /// Every `//` comment, in source order (doc comments included).
    pub comments: Vec<Comment>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comment {
    /// The text after `//`, without the trailing newline.
    pub text: String,
    pub span: Span,
}

impl Comment {
    pub fn is_doc(&self) -> bool {
        self.text.starts_with('/') && !self.text.starts_with("//")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Item {
    Import(Import),
    Type(TypeDecl),
    Alias(AliasDecl),
    Enum(EnumDecl),
    Let(LetDecl),
    Channel(ChannelDecl),
    Cluster(ClusterDecl),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Import(i) => i.span,
            Item::Type(t) => t.span,
            Item::Alias(a) => a.span,
            Item::Enum(e) => e.span,
            Item::Let(l) => l.span,
            Item::Channel(c) => c.span,
            Item::Cluster(c) => c.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A string literal without interpolation (import paths, cluster ids, labels, map keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlainString {
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Import {
    pub path: PlainString,
    pub alias: Option<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub members: Vec<Member>,
    pub span: Span,
}

/// `type NAME = TYPE`: another name for a type, with its own documentation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AliasDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub ty: TypeExpr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Member {
    Field(FieldDecl),
    Check(CheckDecl),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldDecl {
    pub doc: Option<String>,
    pub attributes: Vec<Attribute>,
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

/// `@label` or `@block("node_pool")` on a field declaration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attribute {
    pub name: Ident,
    pub argument: Option<PlainString>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckDecl {
    pub condition: Expr,
    pub message: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnumDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub variants: Vec<Variant>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Variant {
    pub doc: Option<String>,
    pub name: Ident,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LetDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChannelDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterDecl {
    pub doc: Option<String>,
    pub id: PlainString,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeExpr {
    pub kind: TypeExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TypeExprKind {
    /// `String`, `NodePool`, or `aws.NodePool` (module alias first).
    Named {
        module: Option<Ident>,
        name: Ident,
    },
    List(Box<TypeExpr>),
    /// `{String: T}`; the key type is always `String`.
    Map(Box<TypeExpr>),
    Optional(Box<TypeExpr>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Block {
    pub entries: Vec<Entry>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Entry {
    /// `name = value`
    Field {
        name: Ident,
        value: Expr,
        span: Span,
    },
    /// `name "label"? { … }`
    Block {
        name: Ident,
        label: Option<PlainString>,
        body: Block,
        span: Span,
    },
    /// `...expr`
    Spread { expr: Expr, span: Span },
}

impl Entry {
    pub fn span(&self) -> Span {
        match self {
            Entry::Field { span, .. } | Entry::Block { span, .. } | Entry::Spread { span, .. } => {
                *span
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    /// A string literal, split into text and `${…}` parts.
    Str(Vec<StrPart>),
    /// A number with a unit: `90s`, `3d`, `500Mi`, `250m`. Whether it is a Duration or a
    /// Quantity is decided by the type checker (`m` is minutes or milli-units by context).
    UnitNumber {
        number: String,
        unit: String,
    },
    List(Vec<Expr>),
    Map(Vec<(PlainString, Expr)>),
    /// `Type { … }` or `{ a = 1 }` (type from context).
    Record {
        /// Boxed: most records have no type name, and every expression is as large as
        /// the largest kind.
        ty: Option<Box<TypeExpr>>,
        body: Block,
    },
    Name(Ident),
    Field(Box<Expr>, Ident),
    Index(Box<Expr>, Box<Expr>),
    Call(Ident, Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Comprehension {
        body: Box<Expr>,
        var: Ident,
        iter: Box<Expr>,
        filter: Option<Box<Expr>>,
    },
    Paren(Box<Expr>),
}

impl Expr {
    /// Calls `f` with each sub-expression, including the values inside a record
    /// literal's nested blocks.
    pub fn for_each_child<'a>(&'a self, mut f: impl FnMut(&'a Expr)) {
        fn block<'a>(b: &'a Block, f: &mut impl FnMut(&'a Expr)) {
            for entry in &b.entries {
                match entry {
                    Entry::Field { value, .. } => f(value),
                    Entry::Spread { expr, .. } => f(expr),
                    Entry::Block { body, .. } => block(body, f),
                }
            }
        }
        match &self.kind {
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Null
            | ExprKind::UnitNumber { .. }
            | ExprKind::Name(_) => {}
            ExprKind::Str(parts) => {
                for part in parts {
                    if let StrPart::Interpolation(e) = part {
                        f(e);
                    }
                }
            }
            ExprKind::List(items) | ExprKind::Call(_, items) => items.iter().for_each(f),
            ExprKind::Map(entries) => entries.iter().for_each(|(_, e)| f(e)),
            ExprKind::Record { body, .. } => block(body, &mut f),
            ExprKind::Field(base, _) => f(base),
            ExprKind::Index(base, index) => {
                f(base);
                f(index);
            }
            ExprKind::Unary(_, e) | ExprKind::Paren(e) => f(e),
            ExprKind::Binary(_, l, r) => {
                f(l);
                f(r);
            }
            ExprKind::If(c, t, e) => {
                f(c);
                f(t);
                f(e);
            }
            ExprKind::Comprehension {
                body, iter, filter, ..
            } => {
                f(body);
                f(iter);
                if let Some(filter) = filter {
                    f(filter);
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum StrPart {
    Text(String),
    Interpolation(Expr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BinaryOp {
    Coalesce,
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Coalesce => "??",
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }

    /// Binding strength; higher binds tighter. Matches the parser's Pratt table.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Coalesce => 1,
            BinaryOp::Or => 2,
            BinaryOp::And => 3,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => 4,
            BinaryOp::Add | BinaryOp::Sub => 5,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 6,
        }
    }
}

impl UnaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Neg => "-",
            UnaryOp::Not => "!",
        }
    }
}
