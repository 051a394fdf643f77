//! Document symbols for the outline: clusters with their node pools, channels, types,
//! enums and `let` bindings.

use lsp_types::{DocumentSymbol, SymbolKind};

use super::workspace::range;
use crate::source::SourceFile;
use crate::span::Span;
use crate::syntax::ast::{Block, Entry, Item, Member, Module};

pub(crate) fn document_symbols(source: &SourceFile, ast: &Module) -> Vec<DocumentSymbol> {
    let symbol = |name: &str,
                  detail: Option<&str>,
                  kind,
                  span: Span,
                  selection: Span,
                  children: Vec<DocumentSymbol>| {
        #[allow(deprecated)] // `deprecated` is a required field of the struct.
        DocumentSymbol {
            // Editors reject empty names.
            name: if name.is_empty() {
                "\"\"".into()
            } else {
                name.to_string()
            },
            detail: detail.map(str::to_string),
            kind,
            tags: None,
            deprecated: None,
            range: range(source, span),
            selection_range: range(source, selection),
            children: (!children.is_empty()).then_some(children),
        }
    };
    ast.items
        .iter()
        .filter_map(|item| {
            Some(match item {
                Item::Cluster(c) => symbol(
                    &c.id.value,
                    Some("cluster"),
                    SymbolKind::NAMESPACE,
                    c.span,
                    c.id.span,
                    labelled_blocks(source, &c.body),
                ),
                Item::Channel(c) => symbol(
                    &c.name.name,
                    Some("channel"),
                    SymbolKind::CONSTANT,
                    c.span,
                    c.name.span,
                    Vec::new(),
                ),
                Item::Type(t) => {
                    let fields = t
                        .members
                        .iter()
                        .filter_map(|m| match m {
                            Member::Field(f) => Some(symbol(
                                &f.name.name,
                                None,
                                SymbolKind::FIELD,
                                f.span,
                                f.name.span,
                                Vec::new(),
                            )),
                            Member::Check(_) => None,
                        })
                        .collect();
                    symbol(
                        &t.name.name,
                        Some("type"),
                        SymbolKind::STRUCT,
                        t.span,
                        t.name.span,
                        fields,
                    )
                }
                Item::Alias(a) => symbol(
                    &a.name.name,
                    Some("type"),
                    SymbolKind::TYPE_PARAMETER,
                    a.span,
                    a.name.span,
                    Vec::new(),
                ),
                Item::Enum(e) => {
                    let variants = e
                        .variants
                        .iter()
                        .map(|v| {
                            symbol(
                                &v.name.name,
                                None,
                                SymbolKind::ENUM_MEMBER,
                                v.name.span,
                                v.name.span,
                                Vec::new(),
                            )
                        })
                        .collect();
                    symbol(
                        &e.name.name,
                        Some("enum"),
                        SymbolKind::ENUM,
                        e.span,
                        e.name.span,
                        variants,
                    )
                }
                Item::Let(l) => symbol(
                    &l.name.name,
                    Some("let"),
                    SymbolKind::VARIABLE,
                    l.span,
                    l.name.span,
                    Vec::new(),
                ),
                Item::Import(_) => return None,
            })
        })
        .collect()
}

/// `node_pool "NAME" { … }` and other labelled blocks, nested as written.
fn labelled_blocks(source: &SourceFile, block: &Block) -> Vec<DocumentSymbol> {
    block
        .entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Block {
                name,
                label: Some(label),
                body,
                span,
            } => {
                #[allow(deprecated)] // `deprecated` is a required field of the struct.
                let symbol = DocumentSymbol {
                    name: if label.value.is_empty() {
                        "\"\"".into()
                    } else {
                        label.value.clone()
                    },
                    detail: Some(name.name.clone()),
                    kind: SymbolKind::OBJECT,
                    tags: None,
                    deprecated: None,
                    range: range(source, *span),
                    selection_range: range(source, label.span),
                    children: Some(labelled_blocks(source, body)).filter(|c| !c.is_empty()),
                };
                Some(symbol)
            }
            _ => None,
        })
        .collect()
}
