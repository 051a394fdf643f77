//! What is under the cursor: the checker's resolution of the innermost name, and the
//! blocks around the cursor with the record type each builds and its evaluated value.
//!
//! Record types of blocks are read from the declarations the checker collected (the
//! same `block_field`/`field` lookups it makes), so completion also works in a block
//! that does not parse yet, from a reparse of the text without the word being typed.

use crate::eval::{Data, Fleet};
use crate::resolve::ModuleId;
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::*;
use crate::types::{Checked, Declarations, Def, RecordId, Resolution, Ty};

/// The resolution with the smallest span around `offset` in `file`.
pub(crate) fn resolution_at(
    checked: &Checked,
    file: FileId,
    offset: usize,
) -> Option<(Span, &Resolution)> {
    checked
        .resolutions
        .iter()
        .filter(|((f, start, end), _)| {
            *f == file
                && Span {
                    start: *start,
                    end: *end,
                }
                .contains(offset)
        })
        .map(|((_, start, end), r)| {
            (
                Span {
                    start: *start,
                    end: *end,
                },
                r,
            )
        })
        .min_by_key(|(span, _)| (span.end - span.start, std::cmp::Reverse(span.start)))
}

/// One block around the cursor.
pub(crate) struct Frame<'a> {
    pub header: Header<'a>,
    pub block: &'a Block,
    /// The record type the block builds, when known.
    pub record: Option<RecordId>,
    /// The block's evaluated value, when the fleet is available.
    pub value: Option<&'a Data>,
}

pub(crate) enum Header<'a> {
    Cluster(&'a ClusterDecl),
    Channel(&'a ChannelDecl),
    /// `name "label"? { … }` inside another block.
    Nested {
        name: &'a Ident,
        label: Option<&'a PlainString>,
    },
    /// `Type { … }` or `{ … }` in an expression.
    Literal,
}

impl Frame<'_> {
    /// Whether `offset` is between the braces (not on the header).
    pub(crate) fn is_inside(&self, offset: usize) -> bool {
        (self.block.span.start as usize) < offset && offset < self.block.span.end as usize
    }

    /// Whether the header's name or label is at `offset`.
    pub(crate) fn header_at(&self, offset: usize) -> bool {
        match &self.header {
            Header::Cluster(c) => c.id.span.contains(offset),
            Header::Channel(c) => c.name.span.contains(offset),
            Header::Nested { name, label } => {
                name.span.contains(offset) || label.is_some_and(|l| l.span.contains(offset))
            }
            Header::Literal => false,
        }
    }
}

/// What the walk needs from the analysis.
pub(crate) struct Context<'a> {
    pub decls: &'a Declarations,
    pub checked: &'a Checked,
    pub file: FileId,
    pub module: Option<ModuleId>,
    pub fleet: Option<&'a Fleet>,
}

/// The blocks around `offset`, outermost first. The innermost one may have the cursor on
/// its header rather than inside its braces.
pub(crate) fn frames_at<'a>(
    context: &Context<'a>,
    ast: &'a Module,
    offset: usize,
) -> Vec<Frame<'a>> {
    let mut walk = Walk {
        context,
        offset,
        frames: Vec::new(),
    };
    for item in &ast.items {
        if !item.span().contains(offset) {
            continue;
        }
        match item {
            Item::Cluster(c) => {
                let value = context.fleet.and_then(|f| f.cluster(&c.id.value));
                walk.block(
                    Header::Cluster(c),
                    &c.body,
                    context.decls.cluster_type,
                    value,
                );
            }
            Item::Channel(c) => {
                let value = context.fleet.and_then(|f| {
                    f.channels.iter().find(|d| {
                        d.get("name").and_then(Data::as_str) == Some(c.name.name.as_str())
                    })
                });
                walk.block(
                    Header::Channel(c),
                    &c.body,
                    context.decls.channel_type,
                    value,
                );
            }
            Item::Let(l) => walk.expr(&l.value, None, None),
            Item::Type(t) => {
                for member in &t.members {
                    match member {
                        Member::Field(f) => {
                            if let Some(default) = &f.default {
                                walk.expr(default, None, None);
                            }
                        }
                        Member::Check(c) => {
                            walk.expr(&c.condition, None, None);
                            walk.expr(&c.message, None, None);
                        }
                    }
                }
            }
            Item::Import(_) | Item::Alias(_) | Item::Enum(_) => {}
        }
    }
    walk.frames
}

struct Walk<'c, 'a> {
    context: &'c Context<'a>,
    offset: usize,
    frames: Vec<Frame<'a>>,
}

impl<'a> Walk<'_, 'a> {
    fn block(
        &mut self,
        header: Header<'a>,
        block: &'a Block,
        record: Option<RecordId>,
        value: Option<&'a Data>,
    ) {
        self.frames.push(Frame {
            header,
            block,
            record,
            value,
        });
        if !block.span.contains(self.offset) {
            return;
        }
        let decls = self.context.decls;
        for (index, entry) in block.entries.iter().enumerate() {
            if !entry.span().contains(self.offset) {
                continue;
            }
            match entry {
                Entry::Block {
                    name, label, body, ..
                } => {
                    let (record, value) = match record.map(|r| decls.record(r)) {
                        Some(parent) => match parent.block_field(&name.name) {
                            Some((_, field)) => {
                                let element = match &field.ty {
                                    Ty::List(t) => match **t {
                                        Ty::Record(r) => Some(r),
                                        _ => None,
                                    },
                                    _ => None,
                                };
                                let value =
                                    value.and_then(|v| v.get(&field.name)).and_then(|list| {
                                        repeated_block_value(
                                            decls,
                                            element,
                                            list,
                                            &block.entries[..index],
                                            name,
                                            label.as_ref(),
                                        )
                                    });
                                (element, value)
                            }
                            None => match parent.field(&name.name) {
                                Some((_, field)) => (
                                    record_of(field.ty.required()),
                                    value.and_then(|v| v.get(&field.name)),
                                ),
                                None => (None, None),
                            },
                        },
                        None => (None, None),
                    };
                    self.block(
                        Header::Nested {
                            name,
                            label: label.as_ref(),
                        },
                        body,
                        record,
                        value,
                    );
                }
                Entry::Field {
                    name, value: expr, ..
                } => {
                    let field = record.and_then(|r| decls.record(r).field(&name.name));
                    let expected = field.and_then(|(_, f)| record_of(f.ty.required()));
                    let data = field.and_then(|(_, f)| value.and_then(|v| v.get(&f.name)));
                    self.expr(expr, expected, data);
                }
                Entry::Spread { expr, .. } => self.expr(expr, None, None),
            }
        }
    }

    fn expr(&mut self, expr: &'a Expr, expected: Option<RecordId>, value: Option<&'a Data>) {
        if !expr.span.contains(self.offset) {
            return;
        }
        match &expr.kind {
            ExprKind::Record { ty, body } => {
                let resolved = match self
                    .context
                    .checked
                    .resolution(self.context.file, expr.span)
                {
                    Some(Resolution::Record(r)) => Some(*r),
                    _ => None,
                };
                let named = ty.as_ref().and_then(|t| {
                    self.context
                        .module
                        .and_then(|m| type_named(self.context.decls, m, t))
                });
                let record = match named {
                    Some(Def::Record(r)) => Some(r),
                    _ => resolved.or(expected),
                };
                self.block(Header::Literal, body, record, value);
            }
            _ => {
                for child in children(expr) {
                    self.expr(child, None, None);
                }
            }
        }
    }
}

/// Which evaluated element a repeated block (`node_pool "x" { … }`) became: the one with
/// the same label, or for blocks without labels the one at the same position.
fn repeated_block_value<'a>(
    decls: &Declarations,
    element: Option<RecordId>,
    list: &'a Data,
    before: &[Entry],
    name: &Ident,
    label: Option<&PlainString>,
) -> Option<&'a Data> {
    let items = list.as_list();
    let label_field = element.and_then(|r| {
        let record = decls.record(r);
        record.label_field().map(|i| record.fields[i].name.as_str())
    });
    match (label_field, label) {
        (Some(field), Some(label)) => items
            .iter()
            .find(|d| d.get(field).and_then(Data::as_str) == Some(label.value.as_str())),
        _ => {
            let position = before
                .iter()
                .filter(|e| matches!(e, Entry::Block { name: n, .. } if n.name == name.name))
                .count();
            items.get(position)
        }
    }
}

pub(crate) fn record_of(ty: &Ty) -> Option<RecordId> {
    match ty {
        Ty::Record(r) => Some(*r),
        _ => None,
    }
}

/// What a written type name (`NodePool`, `pools.Pool`) refers to in `module`.
pub(crate) fn type_named(decls: &Declarations, module: ModuleId, ty: &TypeExpr) -> Option<Def> {
    let TypeExprKind::Named {
        module: alias,
        name,
    } = &ty.kind
    else {
        return None;
    };
    match alias {
        Some(alias) => match decls.lookup(module, &alias.name)? {
            Def::Alias(targets) => targets
                .iter()
                .find_map(|m| decls.lookup(*m, &name.name).cloned()),
            _ => None,
        },
        None => decls.lookup(module, &name.name).cloned(),
    }
}

/// The named type written at `offset` (in type declarations, `let` annotations and
/// record literals), innermost first.
pub(crate) fn type_expr_at(ast: &Module, offset: usize) -> Option<&TypeExpr> {
    fn find(ty: &TypeExpr, offset: usize) -> Option<&TypeExpr> {
        if !ty.span.contains(offset) {
            return None;
        }
        match &ty.kind {
            TypeExprKind::Named { .. } => Some(ty),
            TypeExprKind::List(inner)
            | TypeExprKind::Map(inner)
            | TypeExprKind::Optional(inner) => find(inner, offset),
        }
    }
    fn in_expr(expr: &Expr, offset: usize) -> Option<&TypeExpr> {
        if !expr.span.contains(offset) {
            return None;
        }
        if let ExprKind::Record { ty, body } = &expr.kind {
            return ty
                .as_ref()
                .and_then(|t| find(t, offset))
                .or_else(|| in_block(body, offset));
        }
        children(expr).into_iter().find_map(|e| in_expr(e, offset))
    }
    fn in_block(block: &Block, offset: usize) -> Option<&TypeExpr> {
        block.entries.iter().find_map(|entry| match entry {
            Entry::Field { value, .. } => in_expr(value, offset),
            Entry::Block { body, .. } => in_block(body, offset),
            Entry::Spread { expr, .. } => in_expr(expr, offset),
        })
    }
    ast.items
        .iter()
        .filter(|i| i.span().contains(offset))
        .find_map(|item| match item {
            Item::Type(t) => t.members.iter().find_map(|m| match m {
                Member::Field(f) => find(&f.ty, offset)
                    .or_else(|| f.default.as_ref().and_then(|d| in_expr(d, offset))),
                Member::Check(c) => in_expr(&c.condition, offset),
            }),
            Item::Let(l) => {
                l.ty.as_ref()
                    .and_then(|t| find(t, offset))
                    .or_else(|| in_expr(&l.value, offset))
            }
            Item::Alias(a) => find(&a.ty, offset),
            Item::Cluster(c) => in_block(&c.body, offset),
            Item::Channel(c) => in_block(&c.body, offset),
            Item::Import(_) | Item::Enum(_) => None,
        })
}

/// The direct sub-expressions of an expression.
pub(crate) fn children(expr: &Expr) -> Vec<&Expr> {
    match &expr.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Null
        | ExprKind::UnitNumber { .. }
        | ExprKind::Name(_) => Vec::new(),
        ExprKind::Str(parts) => parts
            .iter()
            .filter_map(|p| match p {
                StrPart::Interpolation(e) => Some(e),
                StrPart::Text(_) => None,
            })
            .collect(),
        ExprKind::List(items) | ExprKind::Call(_, items) => items.iter().collect(),
        ExprKind::Map(entries) => entries.iter().map(|(_, e)| e).collect(),
        ExprKind::Record { body, .. } => body
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Field { value, .. } => Some(value),
                Entry::Spread { expr, .. } => Some(expr),
                Entry::Block { .. } => None,
            })
            .collect(),
        ExprKind::Field(base, _) => vec![&**base],
        ExprKind::Index(base, index) => vec![&**base, &**index],
        ExprKind::Unary(_, e) | ExprKind::Paren(e) => vec![&**e],
        ExprKind::Binary(_, l, r) => vec![&**l, &**r],
        ExprKind::If(c, t, e) => vec![&**c, &**t, &**e],
        ExprKind::Comprehension {
            body, iter, filter, ..
        } => {
            let mut out = vec![&**body, &**iter];
            out.extend(filter.as_deref());
            out
        }
    }
}
