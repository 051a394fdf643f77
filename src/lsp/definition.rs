//! Go to definition: channels, `let` bindings, types, enum variants, fields (into the
//! stdlib) and imported modules.

use lsp_types::{GotoDefinitionResponse, Location};

use super::cursor::{resolution_at, type_expr_at, type_named};
use super::paths::StdlibCache;
use super::workspace::range;
use crate::analysis::Analysis;
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::Item;
use crate::types::{Def, Resolution};

pub(crate) fn definition(
    analysis: &Analysis,
    file: FileId,
    offset: usize,
    stdlib: &mut StdlibCache,
) -> Option<GotoDefinitionResponse> {
    let program = &analysis.program;
    let decls = &analysis.checked.decls;
    let module_id = program.module_of_file(file)?;
    let module = program.module(module_id);
    let mut location = |file: FileId, span: Span| -> Option<Location> {
        let source = program.sources.get(file);
        Some(Location::new(
            stdlib.uri(&source.path)?,
            range(source, span),
        ))
    };

    // An import's path: the module (or every module of a directory) it loads.
    for (index, item) in module.ast.items.iter().enumerate() {
        if let Item::Import(import) = item
            && import.path.span.contains(offset)
        {
            let targets = module.imports.get(&index)?;
            let locations: Vec<Location> = targets
                .iter()
                .filter_map(|m| location(program.module(*m).file, Span::default()))
                .collect();
            return Some(GotoDefinitionResponse::Array(locations));
        }
    }

    let target = match resolution_at(&analysis.checked, file, offset).map(|(_, r)| r) {
        Some(Resolution::Channel(c)) => {
            let site = decls.channel(*c).site;
            (site.file, site.name_span)
        }
        Some(
            Resolution::FieldEntry { record, field } | Resolution::Field { record, field, .. },
        ) => {
            let def = decls.record(*record);
            (def.site.file, def.fields.get(*field)?.name_span)
        }
        Some(Resolution::Let(m, item)) => {
            let Item::Let(decl) = program.module(*m).ast.items.get(*item)? else {
                return None;
            };
            (program.module(*m).file, decl.name.span)
        }
        Some(Resolution::Variant(e, index)) => {
            let def = decls.enum_def(*e);
            (def.site.file, def.variants.get(*index)?.span)
        }
        Some(Resolution::Record(r)) => {
            let site = decls.record(*r).site;
            (site.file, site.name_span)
        }
        Some(_) => return None,
        None => {
            let ty = type_expr_at(&module.ast, offset)?;
            let site = match type_named(decls, module_id, ty)? {
                Def::Record(r) => decls.record(r).site,
                Def::Enum(e) => decls.enum_def(e).site,
                Def::TypeAlias(a) => decls.aliases[a].site,
                _ => return None,
            };
            (site.file, site.name_span)
        }
    };
    location(target.0, target.1).map(GotoDefinitionResponse::Scalar)
}
