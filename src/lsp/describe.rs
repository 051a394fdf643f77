//! Markdown for hovers and completion items: fields with their types and docs,
//! evaluated values, declared defaults.

use std::fmt::Write as _;

use crate::analysis::Analysis;
use crate::eval::Data;
use crate::span::Span;
use crate::syntax::ast::{FieldDecl, Item, Member};
use crate::types::RecordId;
use crate::units::format_duration;

/// Longest value shown inline; longer ones are cut with `…`.
const MAX_VALUE_CHARS: usize = 100;

pub(crate) fn code_block(text: &str) -> String {
    format!("```flotilla\n{text}\n```")
}

/// A value in flotilla syntax, shortened for display.
pub(crate) fn show_data(data: &Data) -> String {
    let mut out = String::new();
    write_data(&mut out, data);
    if out.chars().count() > MAX_VALUE_CHARS {
        out = out.chars().take(MAX_VALUE_CHARS - 1).collect();
        out.push('…');
    }
    out
}

/// Like [`show_data`], but records spread over indented lines (for hovers).
pub(crate) fn show_data_expanded(data: &Data, indent: usize) -> String {
    let Data::Record(record) = data else {
        return show_data(data);
    };
    let pad = " ".repeat(indent);
    let mut out = format!("{} {{\n", record.type_name);
    for (name, value) in &record.fields {
        let _ = writeln!(
            out,
            "{pad}  {name} = {}",
            show_data_expanded(value, indent + 2)
        );
    }
    let _ = write!(out, "{pad}}}");
    out
}

fn write_data(out: &mut String, data: &Data) {
    // Stop early on huge values; `show_data` cuts the rest.
    if out.len() > MAX_VALUE_CHARS * 4 {
        return;
    }
    let _ = match data {
        Data::Null => write!(out, "null"),
        Data::Bool(b) => write!(out, "{b}"),
        Data::Int(n) => write!(out, "{n}"),
        Data::Float(x) => write!(out, "{x:?}"),
        Data::String(s) => write!(out, "{}", serde_json::Value::String(s.clone())),
        Data::Duration(ms) => write!(out, "{}", format_duration(*ms)),
        Data::Quantity(q) => write!(out, "{q}"),
        Data::Secret(s) => write!(out, "{}", s.redacted()),
        Data::Enum(variant) => write!(out, "{variant}"),
        Data::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_data(out, item);
            }
            write!(out, "]")
        }
        Data::Map(entries) => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                out.push_str(if i > 0 { ", " } else { " " });
                let _ = write!(out, "{}: ", serde_json::Value::String(key.clone()));
                write_data(out, value);
            }
            write!(out, "{}}}", if entries.is_empty() { "" } else { " " })
        }
        Data::Record(record) => {
            let _ = write!(out, "{} {{", record.type_name);
            for (i, (name, value)) in record.fields.iter().enumerate() {
                out.push_str(if i > 0 { ", " } else { " " });
                let _ = write!(out, "{name} = ");
                write_data(out, value);
            }
            write!(out, " }}")
        }
    };
}

/// The declaration of a field in its `type` and the source text of its spans.
fn field_source(
    analysis: &Analysis,
    record: RecordId,
    field: usize,
    span: impl FnOnce(&FieldDecl) -> Option<Span>,
) -> Option<&str> {
    let def = analysis.checked.decls.record(record);
    let member = def.fields.get(field)?.member;
    let module = analysis.program.module(def.site.module);
    let Item::Type(decl) = module.ast.items.get(def.site.item)? else {
        return None;
    };
    let Member::Field(field) = decl.members.get(member)? else {
        return None;
    };
    analysis
        .program
        .sources
        .get(def.site.file)
        .text
        .get(span(field)?.range())
}

/// The source text of a field's declared default (`3d`, `if … then … else …`).
pub(crate) fn declared_default(
    analysis: &Analysis,
    record: RecordId,
    field: usize,
) -> Option<&str> {
    field_source(analysis, record, field, |f| {
        f.default.as_ref().map(|d| d.span)
    })
}

/// `name: Type`, the doc comment, and what happens when the field is not set.
pub(crate) fn field_markdown(analysis: &Analysis, record: RecordId, field: usize) -> String {
    let decls = &analysis.checked.decls;
    let def = decls.record(record);
    let Some(f) = def.fields.get(field) else {
        return String::new();
    };
    // The type as written names aliases (`[InstanceType]`); the resolved one follows.
    let resolved = decls.show(&f.ty).to_string();
    let ty = match field_source(analysis, record, field, |f| Some(f.ty.span)) {
        Some(written) if written != resolved => format!("{written}  // {resolved}"),
        _ => resolved,
    };
    let mut out = code_block(&format!("{}: {ty}", f.name));
    if let Some(doc) = &f.doc {
        let _ = write!(out, "\n\n{doc}");
    }
    let _ = write!(out, "\n\nField of `{}`", def.name);
    if f.is_label {
        out.push_str(", set by the block label");
    } else if f.is_required() {
        out.push_str(", required");
    } else if let Some(default) = declared_default(analysis, record, field) {
        let _ = write!(out, ", default `{}`", one_line(default));
    }
    out.push('.');
    out
}

/// Multi-line source shown inline: whitespace runs folded to one space, `secret(…)`
/// arguments hidden.
pub(crate) fn one_line(text: &str) -> String {
    let shown = crate::redact::source_line(text);
    shown.split_whitespace().collect::<Vec<_>>().join(" ")
}
