//! Hover: types and doc comments of fields, the values channels resolve to, and the
//! evaluated values of fields a block leaves unset.

use std::fmt::Write as _;

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};

use super::cursor::{Context, Frame, Header, frames_at, resolution_at, type_expr_at, type_named};
use super::describe::{
    code_block, declared_default, field_markdown, one_line, show_data, show_data_expanded,
};
use super::workspace::range;
use crate::analysis::Analysis;
use crate::eval::Data;
use crate::resolve::ModuleId;
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::{Entry, Item};
use crate::types::{ChannelId, Def, EnumId, RecordId, Resolution};

/// Longest declaration shown as source when there is no evaluated value.
const MAX_SOURCE_LINES: usize = 30;

pub(crate) fn hover(analysis: &Analysis, file: FileId, offset: usize) -> Option<Hover> {
    let program = &analysis.program;
    let module = program.module_of_file(file)?;
    let ast = &program.module(module).ast;
    let context = Context {
        decls: &analysis.checked.decls,
        checked: &analysis.checked,
        file,
        module: Some(module),
        fleet: analysis.fleet.as_ref(),
    };
    let frames = frames_at(&context, ast, offset);
    let (text, span) = if let Some(frame) = frames.last().filter(|f| f.header_at(offset)) {
        block_hover(analysis, file, frame, offset)?
    } else if let Some((span, resolution)) = resolution_at(&analysis.checked, file, offset) {
        (
            resolution_hover(analysis, frames.last(), span, resolution)?,
            span,
        )
    } else if let Some((span, resolution)) = declared_name_at(analysis, module, offset) {
        let text = match resolution {
            Some(resolution) => resolution_hover(analysis, None, span, &resolution)?,
            None => enum_markdown(analysis, enum_at(analysis, module, offset)?),
        };
        (text, span)
    } else {
        let ty = type_expr_at(ast, offset)?;
        let text = match type_named(&analysis.checked.decls, module, ty)? {
            Def::Record(r) => {
                let def = analysis.checked.decls.record(r);
                with_doc(
                    code_block(&format!("type {}", def.name)),
                    def.doc.as_deref(),
                )
            }
            Def::Enum(e) => enum_markdown(analysis, e),
            Def::TypeAlias(a) => {
                let decls = &analysis.checked.decls;
                let def = &decls.aliases[a];
                with_doc(
                    code_block(&format!("type {} = {}", def.name, decls.show(&def.target))),
                    def.doc.as_deref(),
                )
            }
            _ => return None,
        };
        (text, ty.span)
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: text,
        }),
        range: Some(range(program.sources.get(file), span)),
    })
}

/// The name a `type`, field, `enum`, variant or `let` declaration declares at `offset`,
/// as the resolution a use of it would have (`None` for an enum's own name).
fn declared_name_at(
    analysis: &Analysis,
    module: ModuleId,
    offset: usize,
) -> Option<(Span, Option<Resolution>)> {
    let decls = &analysis.checked.decls;
    let ast = &analysis.program.module(module).ast;
    let (index, item) = ast
        .items
        .iter()
        .enumerate()
        .find(|(_, i)| i.span().contains(offset))?;
    match item {
        Item::Type(t) => {
            let record = decls
                .records
                .iter()
                .position(|r| r.site.module == module && r.site.item == index)
                .map(|i| RecordId(i as u32))?;
            if t.name.span.contains(offset) {
                return Some((t.name.span, Some(Resolution::Record(record))));
            }
            let field = decls
                .record(record)
                .fields
                .iter()
                .position(|f| f.name_span.contains(offset))?;
            let span = decls.record(record).fields[field].name_span;
            Some((span, Some(Resolution::FieldEntry { record, field })))
        }
        Item::Enum(e) => {
            if e.name.span.contains(offset) {
                return Some((e.name.span, None));
            }
            let id = enum_at(analysis, module, offset)?;
            let variant = decls
                .enum_def(id)
                .variants
                .iter()
                .position(|v| v.span.contains(offset))?;
            Some((
                decls.enum_def(id).variants[variant].span,
                Some(Resolution::Variant(id, variant)),
            ))
        }
        Item::Let(l) if l.name.span.contains(offset) => {
            Some((l.name.span, Some(Resolution::Let(module, index))))
        }
        _ => None,
    }
}

/// The enum declared by the item at `offset`.
fn enum_at(analysis: &Analysis, module: ModuleId, offset: usize) -> Option<EnumId> {
    let ast = &analysis.program.module(module).ast;
    let index = ast.items.iter().position(|i| i.span().contains(offset))?;
    let decls = &analysis.checked.decls;
    decls
        .enums
        .iter()
        .position(|e| e.site.module == module && e.site.item == index)
        .map(|i| EnumId(i as u32))
}

/// On a block's header: what the block is, and the values of the fields it does not set.
fn block_hover(
    analysis: &Analysis,
    file: FileId,
    frame: &Frame,
    offset: usize,
) -> Option<(String, Span)> {
    let decls = &analysis.checked.decls;
    let (mut text, span) = match &frame.header {
        Header::Cluster(c) => {
            let doc = decls
                .cluster_type
                .and_then(|r| decls.record(r).doc.as_deref());
            (
                with_doc(
                    code_block(&format!("cluster \"{}\"", c.id.value)),
                    c.doc.as_deref().or(doc),
                ),
                c.id.span,
            )
        }
        Header::Channel(c) => {
            let id = decls
                .channels
                .iter()
                .position(|d| d.site.file == file && d.site.name_span == c.name.span)?;
            return Some((
                channel_markdown(analysis, ChannelId(id as u32)),
                c.name.span,
            ));
        }
        Header::Nested { name, label } => {
            let span = match label {
                Some(l) if l.span.contains(offset) => l.span,
                _ => name.span,
            };
            let field = match analysis.checked.resolution(file, name.span) {
                Some(Resolution::FieldEntry { record, field }) => Some((*record, *field)),
                _ => None,
            };
            let repeated =
                field.is_some_and(|(r, f)| decls.record(r).fields[f].block_name.is_some());
            let text = match (field, frame.record) {
                // `node_pool "x"` is one NodePool, not the `node_pools` list.
                (Some(_), Some(element)) if repeated => {
                    let def = decls.record(element);
                    let label = label
                        .map(|l| format!(" \"{}\"", l.value))
                        .unwrap_or_default();
                    with_doc(
                        code_block(&format!("{}{label}: {}", name.name, def.name)),
                        def.doc.as_deref(),
                    )
                }
                (Some((record, field)), _) => field_markdown(analysis, record, field),
                (None, _) => code_block(&name.name),
            };
            (text, span)
        }
        Header::Literal => return None,
    };
    if let Some(unset) = unset_fields(analysis, frame) {
        let _ = write!(text, "\n\n---\n\n{unset}");
    }
    Some((text, span))
}

/// The fields a block leaves unset, with the values they get (evaluated when the fleet
/// evaluated, else the declared defaults).
fn unset_fields(analysis: &Analysis, frame: &Frame) -> Option<String> {
    let record = frame.record?;
    let def = analysis.checked.decls.record(record);
    let set: Vec<&str> = frame
        .block
        .entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Field { name, .. } => Some(name.name.as_str()),
            Entry::Block { name, .. } => Some(
                def.block_field(&name.name)
                    .map_or(name.name.as_str(), |(_, f)| f.name.as_str()),
            ),
            Entry::Spread { .. } => None,
        })
        .collect();
    let mut lines = Vec::new();
    for (index, field) in def.fields.iter().enumerate() {
        if field.is_label || set.contains(&field.name.as_str()) {
            continue;
        }
        let value = match frame.value {
            Some(data) => data.get(&field.name).map(|v| show_data_expanded(v, 0)),
            None => declared_default(analysis, record, index).map(one_line),
        };
        if let Some(value) = value {
            lines.push(format!("{} = {value}", field.name));
        }
    }
    if lines.is_empty() {
        return None;
    }
    let how = if frame.value.is_some() {
        "evaluated"
    } else {
        "declared defaults"
    };
    Some(format!(
        "Not set here ({how}):\n{}",
        code_block(&lines.join("\n"))
    ))
}

fn resolution_hover(
    analysis: &Analysis,
    frame: Option<&Frame>,
    span: Span,
    resolution: &Resolution,
) -> Option<String> {
    let decls = &analysis.checked.decls;
    Some(match resolution {
        Resolution::FieldEntry { record, field } => {
            let mut text = field_markdown(analysis, *record, *field);
            // A field set in the block around the cursor: show what it evaluated to.
            let written_here = frame.is_some_and(|f| {
                f.block
                    .entries
                    .iter()
                    .any(|e| matches!(e, Entry::Field { name, .. } if name.span == span))
            });
            let name = &decls.record(*record).fields.get(*field)?.name;
            if let Some(value) = frame
                .and_then(|f| f.value)
                .filter(|_| written_here)
                .and_then(|v| v.get(name))
            {
                let _ = write!(text, "\n\nValue here: `{}`", show_data(value));
            }
            text
        }
        Resolution::Field { record, field, .. } => field_markdown(analysis, *record, *field),
        Resolution::Channel(c) => channel_markdown(analysis, *c),
        Resolution::Let(module, item) => {
            let Item::Let(decl) = analysis.program.module(*module).ast.items.get(*item)? else {
                return None;
            };
            let ty = analysis
                .checked
                .let_types
                .get(&(*module, *item))
                .map(|t| format!(": {}", decls.show(t)))
                .unwrap_or_default();
            let file = analysis.program.module(*module).file;
            let value = analysis
                .program
                .sources
                .get(file)
                .text
                .get(decl.value.span.range())
                .unwrap_or("");
            let value = show_source_inline(value);
            with_doc(
                code_block(&format!("let {}{ty} = {value}", decl.name.name)),
                decl.doc.as_deref(),
            )
        }
        Resolution::Variant(e, index) => {
            let def = decls.enum_def(*e);
            let variant = def.variants.get(*index)?;
            with_doc(
                code_block(&format!("{}.{}", def.name, variant.name)),
                variant.doc.as_deref(),
            )
        }
        Resolution::Record(r) => {
            let def = decls.record(*r);
            with_doc(
                code_block(&format!("type {}", def.name)),
                def.doc.as_deref(),
            )
        }
        Resolution::Builtin(builtin) => {
            with_doc(code_block(builtin.signature()), Some(builtin.doc()))
        }
        Resolution::ClusterContext => with_doc(
            code_block("cluster: Cluster"),
            Some("The cluster the record belongs to."),
        ),
        Resolution::Duration => code_block("Duration"),
        Resolution::Quantity => code_block("Quantity"),
        Resolution::IntAsFloat => code_block("Float"),
        Resolution::Local => "Comprehension variable.".to_string(),
    })
}

/// `channel NAME { … }` with the evaluated fields, or its source without a fleet.
fn channel_markdown(analysis: &Analysis, channel: ChannelId) -> String {
    let def = analysis.checked.decls.channel(channel);
    let module = analysis.program.module(def.site.module);
    let decl = match module.ast.items.get(def.site.item) {
        Some(Item::Channel(c)) => Some(c),
        _ => None,
    };
    let evaluated = analysis.fleet.as_ref().and_then(|fleet| {
        fleet
            .channels
            .iter()
            .find(|c| c.get("name").and_then(Data::as_str) == Some(def.name.as_str()))
    });
    let body = match (evaluated, decl) {
        (Some(Data::Record(record)), _) => {
            let mut text = format!("channel {} {{\n", def.name);
            for (name, value) in record.fields.iter().filter(|(n, _)| n != "name") {
                let _ = writeln!(text, "  {name} = {}", show_data(value));
            }
            text.push('}');
            text
        }
        (_, Some(decl)) => {
            let source = analysis
                .program
                .sources
                .get(def.site.file)
                .text
                .get(decl.span.range())
                .unwrap_or("");
            let source = crate::redact::source_line(source);
            let lines: Vec<&str> = source.lines().collect();
            if lines.len() > MAX_SOURCE_LINES {
                format!("{}\n  …\n}}", lines[..MAX_SOURCE_LINES].join("\n"))
            } else {
                source
            }
        }
        _ => format!("channel {}", def.name),
    };
    with_doc(code_block(&body), decl.and_then(|d| d.doc.as_deref()))
}

fn enum_markdown(analysis: &Analysis, e: EnumId) -> String {
    let def = analysis.checked.decls.enum_def(e);
    let variants: Vec<&str> = def.variants.iter().map(|v| v.name.as_str()).collect();
    with_doc(
        code_block(&format!("enum {} {{ {} }}", def.name, variants.join(", "))),
        def.doc.as_deref(),
    )
}

fn with_doc(mut text: String, doc: Option<&str>) -> String {
    if let Some(doc) = doc {
        let _ = write!(text, "\n\n{doc}");
    }
    text
}

/// A `let` value inline: one line, cut when long.
fn show_source_inline(source: &str) -> String {
    let line = one_line(source);
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line
    }
}
