//! Pass 1: declarations, scopes, record fields, aliases and type expressions.

use std::collections::HashMap;

use super::{AliasState, BUILTIN_TYPES, Checker};
use crate::codes::Code;
use crate::diagnostic::did_you_mean;
use crate::syntax::ast::*;
use crate::types::*;

impl<'p> Checker<'p> {
    pub(super) fn collect_declarations(&mut self) {
        for module in self.program.module_ids() {
            let m = self.module(module);
            for (item, it) in m.ast.items.iter().enumerate() {
                // A declaration named like a builtin type would be silently shadowed by it.
                let type_name = match it {
                    Item::Type(t) => Some((&t.name, "type")),
                    Item::Alias(a) => Some((&a.name, "type")),
                    Item::Enum(e) => Some((&e.name, "enum")),
                    _ => None,
                };
                if let Some((name, keyword)) = type_name
                    && BUILTIN_TYPES.contains(&name.name.as_str())
                {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::E0104,
                            format!("`{}` is a builtin type and cannot be redeclared", name.name),
                        )
                        .at(m.file, name.span, "builtin type name")
                        .help(format!(
                            "give the {keyword} another name; builtin types are {}",
                            BUILTIN_TYPES.join(", ")
                        )),
                    );
                }
                let site = |name_span| DeclSite {
                    module,
                    file: m.file,
                    item,
                    name_span,
                };
                match it {
                    Item::Type(t) => self.decls.records.push(Arc::new(RecordDef {
                        name: t.name.name.clone(),
                        doc: t.doc.clone(),
                        site: site(t.name.span),
                        fields: Vec::new(),
                        checks: Vec::new(),
                    })),
                    Item::Enum(e) => {
                        let mut variants: Vec<VariantDef> = Vec::new();
                        for v in &e.variants {
                            if let Some(first) = variants.iter().find(|x| x.name == v.name.name) {
                                let first = first.span;
                                self.diagnostics.push(
                                    Diagnostic::error(
                                        Code::E0110,
                                        format!("variant `{}` is declared twice", v.name.name),
                                    )
                                    .at(m.file, v.name.span, "declared again here")
                                    .also(
                                        m.file,
                                        first,
                                        "first declared here",
                                    ),
                                );
                                continue;
                            }
                            variants.push(VariantDef {
                                name: v.name.name.clone(),
                                doc: v.doc.clone(),
                                span: v.name.span,
                            });
                        }
                        self.decls.enums.push(EnumDef {
                            name: e.name.name.clone(),
                            doc: e.doc.clone(),
                            site: site(e.name.span),
                            variants,
                        });
                    }
                    Item::Alias(a) => self.decls.aliases.push(AliasDef {
                        name: a.name.name.clone(),
                        doc: a.doc.clone(),
                        site: site(a.name.span),
                        target: Ty::Error,
                    }),
                    Item::Channel(c) => self.decls.channels.push(ChannelDef {
                        name: c.name.name.clone(),
                        site: site(c.name.span),
                    }),
                    Item::Cluster(c) => self.decls.clusters.push(ClusterDef {
                        id: c.id.value.clone(),
                        site: site(c.id.span),
                    }),
                    Item::Import(_) | Item::Let(_) => {}
                }
                let def = match it {
                    Item::Let(l) => Some((&l.name, Def::Let(module, item))),
                    Item::Type(t) => Some((
                        &t.name,
                        Def::Record(RecordId(self.decls.records.len() as u32 - 1)),
                    )),
                    Item::Alias(a) => Some((&a.name, Def::TypeAlias(self.decls.aliases.len() - 1))),
                    Item::Enum(e) => Some((
                        &e.name,
                        Def::Enum(EnumId(self.decls.enums.len() as u32 - 1)),
                    )),
                    Item::Channel(c) => Some((
                        &c.name,
                        Def::Channel(ChannelId(self.decls.channels.len() as u32 - 1)),
                    )),
                    Item::Import(_) | Item::Cluster(_) => None,
                };
                if let Some((name, def)) = def {
                    self.declared
                        .insert((module, item), (name.name.clone(), def, name.span));
                }
            }
        }
        // Cluster ids are unique across the whole fleet.
        let mut seen: HashMap<&str, &ClusterDef> = HashMap::new();
        let mut problems = Vec::new();
        for c in &self.decls.clusters {
            if let Some(first) = seen.get(c.id.as_str()) {
                problems.push(
                    Diagnostic::error(Code::E0106, format!("cluster id `{}` is used twice", c.id))
                        .at(c.site.file, c.site.name_span, "second cluster with this id")
                        .also(first.site.file, first.site.name_span, "first declared here")
                        .help("cluster ids name CloudFormation stacks and must be unique in the fleet"),
                );
            } else {
                seen.insert(&c.id, c);
            }
        }
        self.diagnostics.extend(problems);
    }

    pub(super) fn build_scopes(&mut self) {
        let prelude = self.program.prelude;
        let program = self.program;
        let declared = &self.declared;
        let own = |module: ModuleId| -> Vec<(String, Def, Span)> {
            (0..program.module(module).ast.items.len())
                .filter_map(|item| declared.get(&(module, item)).cloned())
                .collect()
        };
        let prelude_defs = own(prelude);
        for module in self.program.module_ids() {
            let m = self.module(module);
            let mut scope: HashMap<String, Def> = HashMap::new();
            for (name, def, _) in &prelude_defs {
                scope.insert(name.clone(), def.clone());
            }
            let mut items: Vec<(&usize, &Vec<ModuleId>)> = m.imports.iter().collect();
            items.sort();
            for (item, targets) in items {
                let Item::Import(import) = &m.ast.items[*item] else {
                    continue;
                };
                match &import.alias {
                    Some(alias) => {
                        scope.insert(alias.name.clone(), Def::Alias(targets.clone()));
                    }
                    None => {
                        for target in targets {
                            for (name, def, _) in own(*target) {
                                scope.insert(name, def);
                            }
                        }
                    }
                }
            }
            let mut declared: HashMap<String, Span> = HashMap::new();
            for (name, def, span) in own(module) {
                if let Some(first) = declared.get(&name) {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::E0104,
                            format!("`{name}` is declared twice in this module"),
                        )
                        .at(m.file, span, "declared again here")
                        .also(m.file, *first, "first declared here")
                        .help("rename one of them"),
                    );
                    continue;
                }
                declared.insert(name.clone(), span);
                scope.insert(name, def);
            }
            self.decls.scopes.insert(module, scope);
        }
        let find = |decls: &Declarations, name: &str| match decls.lookup(prelude, name) {
            Some(Def::Record(r)) => Some(*r),
            _ => None,
        };
        self.decls.cluster_type = find(&self.decls, "Cluster");
        self.decls.channel_type = find(&self.decls, "Channel");
    }

    pub(super) fn resolve_record_fields(&mut self) {
        for index in 0..self.decls.records.len() {
            let site = self.decls.records[index].site;
            let Item::Type(decl) = &self.module(site.module).ast.items[site.item] else {
                continue;
            };
            let mut fields: Vec<FieldDef> = Vec::new();
            let mut checks = Vec::new();
            let mut label_at: Option<Span> = None;
            for (member, m) in decl.members.iter().enumerate() {
                let f = match m {
                    Member::Check(_) => {
                        checks.push(member);
                        continue;
                    }
                    Member::Field(f) => f,
                };
                if let Some(first) = fields.iter().find(|x| x.name == f.name.name) {
                    let first = first.name_span;
                    self.error(
                        Diagnostic::error(
                            Code::E0111,
                            format!("field `{}` is declared twice", f.name.name),
                        )
                        .at(site.file, f.name.span, "declared again here")
                        .also(site.file, first, "first declared here"),
                    );
                    continue;
                }
                let ty = self.type_expr(site.module, site.file, &f.ty);
                let mut def = FieldDef {
                    name: f.name.name.clone(),
                    ty,
                    doc: f.doc.clone(),
                    member,
                    has_default: f.default.is_some(),
                    is_label: false,
                    block_name: None,
                    name_span: f.name.span,
                };
                for attr in &f.attributes {
                    match (attr.name.name.as_str(), &attr.argument) {
                        ("label", None) if def.ty == Ty::String => {
                            if let Some(first) = label_at {
                                self.diagnostics.push(
                                    Diagnostic::error(
                                        Code::E0112,
                                        format!("`{}` has two `@label` fields", decl.name.name),
                                    )
                                    .at(site.file, attr.span, "second `@label`")
                                    .also(site.file, first, "first `@label` here")
                                    .help("a block has one label, so a type has at most one `@label` field"),
                                );
                                continue;
                            }
                            label_at = Some(attr.span);
                            def.is_label = true;
                        }
                        ("block", Some(name))
                            if matches!(&def.ty, Ty::List(t) if matches!(**t, Ty::Record(_))) =>
                        {
                            def.block_name = Some(name.value.clone())
                        }
                        _ => self.diagnostics.push(
                            Diagnostic::error(Code::E0112, format!("invalid attribute `@{}` here", attr.name.name))
                                .at(site.file, attr.span, "not valid on this field")
                                .help("`@label` marks a String field set by a block label; `@block(\"name\")` marks a list-of-records field written as repeated `name { … }` blocks"),
                        ),
                    }
                }
                fields.push(def);
            }
            // Not shared yet: no block has been checked, so nothing else holds it.
            let record = Arc::make_mut(&mut self.decls.records[index]);
            record.fields = fields;
            record.checks = checks;
        }
    }

    pub(super) fn resolve_aliases(&mut self) {
        self.alias_state = vec![AliasState::Pending; self.decls.aliases.len()];
        for index in 0..self.decls.aliases.len() {
            self.alias_target(index, None);
        }
    }

    /// The type alias `index` names; `used` is where it is named, to report a cycle.
    fn alias_target(&mut self, index: usize, used: Option<(FileId, Span)>) -> Ty {
        match &self.alias_state[index] {
            AliasState::Done(ty) => return ty.clone(),
            AliasState::InProgress => {
                let def = &self.decls.aliases[index];
                let (file, span) = used.unwrap_or((def.site.file, def.site.name_span));
                let d = Diagnostic::error(
                    Code::E0113,
                    format!("type `{}` is defined in terms of itself", def.name),
                )
                .at(file, span, "refers back to the alias being defined")
                .also(def.site.file, def.site.name_span, "alias declared here")
                .help("an alias must name a type; declare a `type NAME { … }` record for recursive data");
                self.error(d);
                return Ty::Error;
            }
            AliasState::Pending => {}
        }
        self.alias_state[index] = AliasState::InProgress;
        let site = self.decls.aliases[index].site;
        let target = match &self.module(site.module).ast.items[site.item] {
            Item::Alias(decl) => self.type_expr(site.module, site.file, &decl.ty),
            _ => Ty::Error,
        };
        self.alias_state[index] = AliasState::Done(target.clone());
        self.decls.aliases[index].target = target.clone();
        target
    }

    pub(super) fn type_expr(&mut self, module: ModuleId, file: FileId, t: &TypeExpr) -> Ty {
        match &t.kind {
            TypeExprKind::List(inner) => Ty::List(Box::new(self.type_expr(module, file, inner))),
            TypeExprKind::Map(inner) => Ty::Map(Box::new(self.type_expr(module, file, inner))),
            TypeExprKind::Optional(inner) => self.type_expr(module, file, inner).optional(),
            TypeExprKind::Named {
                module: alias,
                name,
            } => {
                if alias.is_none() {
                    // Keep in step with BUILTIN_TYPES.
                    let builtin = match name.name.as_str() {
                        "String" => Some(Ty::String),
                        "Int" => Some(Ty::Int),
                        "Float" => Some(Ty::Float),
                        "Bool" => Some(Ty::Bool),
                        "Duration" => Some(Ty::Duration),
                        "Quantity" => Some(Ty::Quantity),
                        "Secret" => Some(Ty::Secret),
                        _ => None,
                    };
                    if let Some(ty) = builtin {
                        return ty;
                    }
                }
                let def = match alias {
                    Some(a) => match self.decls.lookup(module, &a.name) {
                        Some(Def::Alias(targets)) => targets
                            .iter()
                            .find_map(|m| self.decls.lookup(*m, &name.name).cloned()),
                        _ => {
                            self.error(
                                Diagnostic::error(
                                    Code::E0103,
                                    format!("no module named `{}`", a.name),
                                )
                                .at(file, a.span, "not an imported module alias")
                                .help("import it with `import \"./file.flt\" as NAME`"),
                            );
                            return Ty::Error;
                        }
                    },
                    None => self.decls.lookup(module, &name.name).cloned(),
                };
                match def {
                    Some(Def::Record(r)) => Ty::Record(r),
                    Some(Def::Enum(e)) => Ty::Enum(e),
                    Some(Def::TypeAlias(a)) => self.alias_target(a, Some((file, name.span))),
                    _ => {
                        let mut candidates: Vec<String> =
                            BUILTIN_TYPES.iter().map(|s| s.to_string()).collect();
                        if let Some(scope) = self.decls.scopes.get(&module) {
                            candidates.extend(
                                scope
                                    .iter()
                                    .filter(|(_, d)| {
                                        matches!(
                                            d,
                                            Def::Record(_) | Def::Enum(_) | Def::TypeAlias(_)
                                        )
                                    })
                                    .map(|(n, _)| n.clone()),
                            );
                        }
                        let mut d =
                            Diagnostic::error(Code::E0105, format!("unknown type `{}`", name.name))
                                .at(file, name.span, "not a type in scope");
                        d = match did_you_mean(&name.name, candidates.iter().map(String::as_str)) {
                            Some(s) => d.help(s),
                            None => d.help("types are String, Int, Float, Bool, Duration, Quantity, Secret, [T], {String: T}, T? and declared `type`s and `enum`s"),
                        };
                        self.error(d);
                        Ty::Error
                    }
                }
            }
        }
    }
}
