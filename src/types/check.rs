//! The type checker: declarations first (so order in files does not matter), then
//! every let, type default, check, channel and cluster, driven by expected types.

use std::collections::HashMap;

use super::builtins::{self, Builtin};
use super::*;
use crate::diagnostic::suggest;
use crate::resolve::LoadedModule;
use crate::syntax::ast::*;
use crate::syntax::{DURATION_UNITS, QUANTITY_UNITS};

pub(super) fn run(program: &Program) -> Checked {
    let mut checker = Checker {
        program,
        decls: Declarations::default(),
        resolutions: HashMap::new(),
        let_types: HashMap::new(),
        let_state: HashMap::new(),
        alias_state: Vec::new(),
        declared: HashMap::new(),
        untyped_let: None,
        diagnostics: Vec::new(),
    };
    checker.collect_declarations();
    checker.build_scopes();
    checker.resolve_aliases();
    checker.resolve_record_fields();
    checker.check_bodies();
    Checked {
        decls: checker.decls,
        resolutions: checker.resolutions,
        let_types: checker.let_types,
        diagnostics: checker.diagnostics,
    }
}

/// Type names the language defines; declarations cannot take them.
const BUILTIN_TYPES: [&str; 7] = [
    "String", "Int", "Float", "Bool", "Duration", "Quantity", "Secret",
];

#[derive(Clone)]
enum AliasState {
    Pending,
    InProgress,
    Done(Ty),
}

#[derive(Clone, Copy, PartialEq)]
enum LetState {
    InProgress,
    Done,
}

struct Checker<'p> {
    program: &'p Program,
    decls: Declarations,
    resolutions: HashMap<(FileId, u32, u32), Resolution>,
    let_types: HashMap<(ModuleId, usize), Ty>,
    let_state: HashMap<(ModuleId, usize), LetState>,
    alias_state: Vec<AliasState>,
    /// Each declaring item's name, what it declares, and the name's span, by
    /// (module, item index); filled by `collect_declarations`.
    declared: HashMap<(ModuleId, usize), (String, Def, Span)>,
    /// The `let` without a type being checked: its name and its value's span.
    untyped_let: Option<(String, Span)>,
    diagnostics: Vec<Diagnostic>,
}

/// Names visible to an expression, innermost frame last.
#[derive(Clone)]
struct Scope {
    module: ModuleId,
    file: FileId,
    frames: Vec<Frame>,
}

#[derive(Clone)]
enum Frame {
    /// The fields of the record being built (a block) or declared (a default or check).
    Record(RecordId),
    /// A comprehension variable.
    Local(String, Ty),
    /// `cluster` is available (inside type defaults and checks).
    ClusterContext,
}

impl Scope {
    fn with(&self, frame: Frame) -> Scope {
        let mut s = self.clone();
        s.frames.push(frame);
        s
    }
}

impl<'p> Checker<'p> {
    fn module(&self, id: ModuleId) -> &'p LoadedModule {
        self.program.module(id)
    }

    fn error(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    fn resolve(&mut self, file: FileId, span: Span, resolution: Resolution) {
        self.resolutions
            .insert((file, span.start, span.end), resolution);
    }

    fn show(&self, ty: &Ty) -> String {
        format!("`{}`", self.decls.show(ty))
    }

    // ---- pass 1: declarations ------------------------------------------------

    fn collect_declarations(&mut self) {
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
                            "E0104",
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
                    Item::Type(t) => self.decls.records.push(RecordDef {
                        name: t.name.name.clone(),
                        doc: t.doc.clone(),
                        site: site(t.name.span),
                        fields: Vec::new(),
                        checks: Vec::new(),
                    }),
                    Item::Enum(e) => {
                        let mut variants: Vec<VariantDef> = Vec::new();
                        for v in &e.variants {
                            if let Some(first) = variants.iter().find(|x| x.name == v.name.name) {
                                let first = first.span;
                                self.diagnostics.push(
                                    Diagnostic::error(
                                        "E0110",
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
                    Diagnostic::error("E0106", format!("cluster id `{}` is used twice", c.id))
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

    fn build_scopes(&mut self) {
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
                            "E0104",
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

    fn resolve_record_fields(&mut self) {
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
                            "E0111",
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
                                        "E0112",
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
                            Diagnostic::error("E0112", format!("invalid attribute `@{}` here", attr.name.name))
                                .at(site.file, attr.span, "not valid on this field")
                                .help("`@label` marks a String field set by a block label; `@block(\"name\")` marks a list-of-records field written as repeated `name { … }` blocks"),
                        ),
                    }
                }
                fields.push(def);
            }
            self.decls.records[index].fields = fields;
            self.decls.records[index].checks = checks;
        }
    }

    fn resolve_aliases(&mut self) {
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
                    "E0113",
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

    fn type_expr(&mut self, module: ModuleId, file: FileId, t: &TypeExpr) -> Ty {
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
                                Diagnostic::error("E0103", format!("no module named `{}`", a.name))
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
                        let mut d = Diagnostic::error(
                            "E0105",
                            format!("unknown type `{}`", name.name),
                        )
                        .at(file, name.span, "not a type in scope");
                        d = match suggest(&name.name, candidates.iter().map(String::as_str)) {
                            Some(s) => d.help(format!("did you mean `{s}`?")),
                            None => d.help("types are String, Int, Float, Bool, Duration, Quantity, Secret, [T], {String: T}, T? and declared `type`s and `enum`s"),
                        };
                        self.error(d);
                        Ty::Error
                    }
                }
            }
        }
    }

    // ---- pass 2: bodies --------------------------------------------------------

    fn check_bodies(&mut self) {
        for module in self.program.module_ids() {
            let m = self.module(module);
            let scope = Scope {
                module,
                file: m.file,
                frames: Vec::new(),
            };
            for (item, it) in m.ast.items.iter().enumerate() {
                match it {
                    Item::Let(_) => {
                        self.let_type(module, item);
                    }
                    Item::Type(t) => self.check_type_decl(module, item, t, &scope),
                    Item::Channel(c) => {
                        if let Some(rid) = self.decls.channel_type {
                            let label = PlainString {
                                value: c.name.name.clone(),
                                span: c.name.span,
                            };
                            self.check_block(
                                &c.body.entries,
                                rid,
                                &scope,
                                Some(&label),
                                c.name.span,
                            );
                        }
                    }
                    Item::Cluster(c) => {
                        if let Some(rid) = self.decls.cluster_type {
                            self.check_block(&c.body.entries, rid, &scope, Some(&c.id), c.id.span);
                        }
                    }
                    Item::Import(_) | Item::Alias(_) | Item::Enum(_) => {}
                }
            }
        }
    }

    fn check_type_decl(&mut self, module: ModuleId, item: usize, t: &'p TypeDecl, scope: &Scope) {
        let Some(rid) = self
            .decls
            .records
            .iter()
            .position(|r| r.site.module == module && r.site.item == item)
            .map(|i| RecordId(i as u32))
        else {
            return;
        };
        let inner = scope.with(Frame::ClusterContext).with(Frame::Record(rid));
        let fields = self.decls.record(rid).fields.clone();
        for field in &fields {
            let Member::Field(decl) = &t.members[field.member] else {
                continue;
            };
            if let Some(default) = &decl.default {
                self.expect(default, &field.ty, &inner);
            }
        }
        for member in &t.members {
            if let Member::Check(c) = member {
                self.expect(&c.condition, &Ty::Bool, &inner);
                self.expect(&c.message, &Ty::String, &inner);
            }
        }
    }

    /// The type of a module-level let, checked on first use (so order does not matter).
    fn let_type(&mut self, module: ModuleId, item: usize) -> Ty {
        match self.let_state.get(&(module, item)) {
            Some(LetState::Done) => return self.let_types[&(module, item)].clone(),
            Some(LetState::InProgress) => return Ty::Error,
            None => {}
        }
        let m = self.module(module);
        let Item::Let(decl) = &m.ast.items[item] else {
            return Ty::Error;
        };
        self.let_state.insert((module, item), LetState::InProgress);
        let scope = Scope {
            module,
            file: m.file,
            frames: Vec::new(),
        };
        let ty = match &decl.ty {
            Some(t) => {
                let declared = self.type_expr(module, m.file, t);
                self.expect(&decl.value, &declared, &scope);
                declared
            }
            None => {
                let outer = self
                    .untyped_let
                    .replace((decl.name.name.clone(), decl.value.span));
                let ty = self.infer(&decl.value, None, &scope);
                self.untyped_let = outer;
                ty
            }
        };
        self.let_state.insert((module, item), LetState::Done);
        self.let_types.insert((module, item), ty.clone());
        ty
    }

    /// Check the entries of a block that builds a record of type `rid`.
    fn check_block(
        &mut self,
        entries: &'p [Entry],
        rid: RecordId,
        scope: &Scope,
        label: Option<&PlainString>,
        header: Span,
    ) {
        let file = scope.file;
        let record = self.decls.record(rid).clone();
        let inner = scope.with(Frame::Record(rid));
        let mut set: HashMap<usize, Span> = HashMap::new();
        // Fields given with `name = …` (a subset of `set`).
        let mut assigned: HashMap<usize, Span> = HashMap::new();
        let mut complete_spread = false;
        let mut labels_seen: HashMap<(usize, String), Span> = HashMap::new();
        // Fields a misspelling probably meant: not reported again as missing.
        let mut misspelt: Vec<String> = Vec::new();
        if let (Some(label), Some(index)) = (label, record.label_field()) {
            set.insert(index, label.span);
        }
        if label.is_some()
            && record.label_field().is_none()
            && let Some(label) = label
        {
            self.error(
                Diagnostic::error("E0207", format!("`{}` blocks take no label", record.name)).at(
                    file,
                    label.span,
                    "remove this label",
                ),
            );
        }
        for entry in entries {
            match entry {
                Entry::Field { name, value, .. } => {
                    let Some((index, field)) = record.field(&name.name) else {
                        // Check the value as the field the misspelling probably meant, so
                        // `enviroment = test` does not also report `test` as unknown.
                        let meant = self.unknown_field(&record, name, file, false);
                        let meant_ty = meant
                            .as_deref()
                            .and_then(|m| record.field(m))
                            .map(|(_, f)| f.ty.clone());
                        match meant_ty {
                            Some(ty) => {
                                self.infer(value, Some(&ty), &inner);
                            }
                            None => {
                                self.infer(value, None, &inner);
                            }
                        }
                        misspelt.extend(meant);
                        continue;
                    };
                    self.resolve(
                        file,
                        name.span,
                        Resolution::FieldEntry {
                            record: rid,
                            field: index,
                        },
                    );
                    if field.is_label && label.is_some() {
                        self.error(
                            Diagnostic::error(
                                "E0217",
                                format!("`{}` is set by the block label", field.name),
                            )
                            .at(file, name.span, "remove this line")
                            .help(format!(
                                "the label in `\"…\" {{` is the {}'s `{}`",
                                record.name, field.name
                            )),
                        );
                    } else if let Some(first) = if field.block_name.is_some() {
                        // Repeated blocks and spread lists add to an assigned list.
                        assigned.get(&index)
                    } else {
                        set.get(&index)
                    } {
                        let first = *first;
                        self.error(
                            Diagnostic::error(
                                "E0108",
                                format!("field `{}` is set twice", field.name),
                            )
                            .at(file, name.span, "set again here")
                            .also(file, first, "first set here")
                            .help("remove one of the assignments"),
                        );
                    }
                    set.insert(index, name.span);
                    assigned.insert(index, name.span);
                    let ty = field.ty.clone();
                    self.expect(value, &ty, &inner);
                }
                Entry::Block {
                    name,
                    label: block_label,
                    body,
                    ..
                } => {
                    if let Some((index, field)) = record.block_field(&name.name) {
                        self.resolve(
                            file,
                            name.span,
                            Resolution::FieldEntry {
                                record: rid,
                                field: index,
                            },
                        );
                        let Ty::List(elem) = &field.ty else { continue };
                        let Ty::Record(elem) = **elem else { continue };
                        let elem_def = self.decls.record(elem).clone();
                        let header = block_label.as_ref().map_or(name.span, |l| l.span);
                        match (elem_def.label_field(), block_label) {
                            (Some(_), None) => self.error(
                                Diagnostic::error(
                                    "E0207",
                                    format!("`{}` blocks need a label", name.name),
                                )
                                .at(file, name.span, "label missing")
                                .help(format!("write `{} \"NAME\" {{ … }}`", name.name)),
                            ),
                            (None, Some(l)) => self.error(
                                Diagnostic::error(
                                    "E0207",
                                    format!("`{}` blocks take no label", name.name),
                                )
                                .at(
                                    file,
                                    l.span,
                                    "remove this label",
                                ),
                            ),
                            (Some(_), Some(l)) => {
                                if let Some(first) = labels_seen.get(&(index, l.value.clone())) {
                                    let what = name.name.replace('_', " ");
                                    self.error(
                                        Diagnostic::error(
                                            "E0107",
                                            format!("{what} `{}` is declared twice", l.value),
                                        )
                                        .at(file, l.span, "second declaration")
                                        .also(file, *first, "first declared here")
                                        .help(format!(
                                            "{what} names must be unique within a {}",
                                            record.name.to_lowercase()
                                        )),
                                    );
                                } else {
                                    labels_seen.insert((index, l.value.clone()), l.span);
                                }
                            }
                            (None, None) => {}
                        }
                        // A missing label was reported above; do not also report its field as missing.
                        let stand_in = PlainString {
                            value: String::new(),
                            span: name.span,
                        };
                        let label = match (elem_def.label_field(), block_label) {
                            (Some(_), Some(l)) => Some(l),
                            (Some(_), None) => Some(&stand_in),
                            (None, _) => None,
                        };
                        self.check_block(&body.entries, elem, &inner, label, header);
                        set.entry(index).or_insert(name.span);
                        continue;
                    }
                    match record.field(&name.name) {
                        Some((index, field)) => {
                            let Ty::Record(elem) = field.ty.required().clone() else {
                                self.error(
                                    Diagnostic::error(
                                        "E0206",
                                        format!("`{}` is not a block", name.name),
                                    )
                                    .at(
                                        file,
                                        name.span,
                                        format!(
                                            "`{}` has type {}",
                                            name.name,
                                            self.show(&field.ty)
                                        ),
                                    )
                                    .help(match &field.block_name {
                                        Some(block) => format!(
                                            "write one `{block} {{ … }}` block per item, or `{} = [ … ]`",
                                            name.name
                                        ),
                                        None => format!("write `{} = …`", name.name),
                                    }),
                                );
                                continue;
                            };
                            self.resolve(
                                file,
                                name.span,
                                Resolution::FieldEntry {
                                    record: rid,
                                    field: index,
                                },
                            );
                            if let Some(first) = set.get(&index) {
                                let first = *first;
                                self.error(
                                    Diagnostic::error(
                                        "E0108",
                                        format!("field `{}` is set twice", field.name),
                                    )
                                    .at(file, name.span, "set again here")
                                    .also(
                                        file,
                                        first,
                                        "first set here",
                                    ),
                                );
                            }
                            set.insert(index, name.span);
                            if let Some(l) = block_label {
                                self.error(
                                    Diagnostic::error(
                                        "E0207",
                                        format!("`{}` blocks take no label", name.name),
                                    )
                                    .at(
                                        file,
                                        l.span,
                                        "remove this label",
                                    ),
                                );
                            }
                            self.check_block(&body.entries, elem, &inner, None, name.span);
                        }
                        None => {
                            self.unknown_field(&record, name, file, true);
                        }
                    }
                }
                Entry::Spread { expr, .. } => {
                    let ty = self.infer(expr, None, scope);
                    match &ty {
                        Ty::Error => complete_spread = true,
                        Ty::Record(r) if *r == rid => complete_spread = true,
                        Ty::List(elem) => {
                            let target = match &**elem {
                                Ty::Record(e) => record.fields.iter().position(|f| {
                                    f.block_name.is_some()
                                        && f.ty == Ty::List(Box::new(Ty::Record(*e)))
                                }),
                                Ty::Error => None,
                                _ => None,
                            };
                            match target {
                                Some(index) => {
                                    set.entry(index).or_insert(expr.span);
                                }
                                None if **elem == Ty::Error => {}
                                None => self.error(self.bad_spread(&record, &ty, file, expr.span)),
                            }
                        }
                        _ => self.error(self.bad_spread(&record, &ty, file, expr.span)),
                    }
                }
            }
        }
        if complete_spread {
            return;
        }
        for (index, field) in record.fields.iter().enumerate() {
            if field.is_required() && !set.contains_key(&index) && !misspelt.contains(&field.name) {
                let what = match label {
                    Some(l) => format!("{} `{}`", record.name, l.value),
                    None => record.name.clone(),
                };
                let d =
                    Diagnostic::error("E0203", format!("missing field `{}` in {what}", field.name))
                        .at(file, header, format!("`{}` is not set", field.name))
                        .also(
                            record.site.file,
                            field.name_span,
                            format!("required by `{}` (no default)", record.name),
                        )
                        .help(format!(
                            "add `{} = …` ({})",
                            field.name,
                            self.decls.show(&field.ty)
                        ));
                self.error(d);
            }
        }
    }

    fn bad_spread(&self, record: &RecordDef, ty: &Ty, file: FileId, span: Span) -> Diagnostic {
        Diagnostic::error(
            "E0212",
            format!("cannot spread {} into a {}", self.show(ty), record.name),
        )
        .at(file, span, format!("this is {}", self.show(ty)))
        .help(format!(
            "spread a `{}` record, or a list of records that this block takes as repeated blocks",
            record.name
        ))
    }

    /// Report an unknown field; returns the field it probably meant.
    fn unknown_field(
        &mut self,
        record: &RecordDef,
        name: &Ident,
        file: FileId,
        as_block: bool,
    ) -> Option<String> {
        let names: Vec<&str> = record
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .chain(record.fields.iter().filter_map(|f| f.block_name.as_deref()))
            .collect();
        let kind = if as_block { "block" } else { "field" };
        let mut d = Diagnostic::error(
            "E0201",
            format!("unknown {kind} `{}` in `{}`", name.name, record.name),
        );
        let blockish = record.block_field(&name.name).is_some();
        let meant = suggest(&name.name, names.iter().copied()).map(str::to_string);
        let (label, help) = if blockish && !as_block {
            (
                "this is a block".to_string(),
                format!("write `{} \"NAME\" {{ … }}`", name.name),
            )
        } else if let Some(s) = suggest(&name.name, names.iter().copied()) {
            (format!("did you mean `{s}`?"), String::new())
        } else {
            let mut list: Vec<&str> = names.clone();
            list.sort();
            (
                "unknown".to_string(),
                format!("`{}` has: {}", record.name, list.join(", ")),
            )
        };
        d = d.at(file, name.span, label);
        if !help.is_empty() {
            d = d.help(help);
        }
        self.error(d);
        meant
    }

    // ---- expressions -----------------------------------------------------------

    /// Check `expr` against an expected type, reporting a mismatch.
    fn expect(&mut self, expr: &'p Expr, expected: &Ty, scope: &Scope) -> Ty {
        let actual = self.infer(expr, Some(expected), scope);
        if !assignable(&actual, expected) {
            self.mismatch(expr, &actual, expected, scope.file);
        }
        actual
    }

    fn mismatch(&mut self, expr: &Expr, actual: &Ty, expected: &Ty, file: FileId) {
        if *actual == Ty::Null {
            // A value that is always null (`let x = null ?? null`) where a value is needed.
            let d = Diagnostic::error(
                "E0214",
                format!("expected {}, found `null`", self.show(expected)),
            )
            .at(file, expr.span, "this is always null")
            .help("only optional types (`T?`) accept null; give a value, or a fallback with `??`");
            self.error(d);
            return;
        }
        let mut d = Diagnostic::error(
            "E0202",
            format!(
                "expected {}, found {}",
                self.show(expected),
                self.show(actual)
            ),
        )
        .at(file, expr.span, format!("this is {}", self.show(actual)));
        let help = match (expected.required(), actual, &expr.kind) {
            (Ty::Enum(e), Ty::String, ExprKind::Str(parts)) => {
                let def = self.decls.enum_def(*e);
                let text = match parts.as_slice() {
                    [StrPart::Text(t)] => t.clone(),
                    _ => String::new(),
                };
                let variants: Vec<&str> = def.variants.iter().map(|v| v.name.as_str()).collect();
                if variants.contains(&text.as_str()) {
                    Some(format!(
                        "enum variants are written without quotes: `{text}`"
                    ))
                } else {
                    Some(format!("`{}` is one of: {}", def.name, variants.join(", ")))
                }
            }
            (Ty::Duration, Ty::Int, _) => {
                Some("durations need a unit: `90s`, `5m`, `8h`, `3d`".into())
            }
            (Ty::Quantity, Ty::Int, _) => {
                Some("quantities need a unit: `500Mi`, `2Gi`, `250m`".into())
            }
            (Ty::Duration | Ty::Quantity, Ty::String, _) => {
                Some("write the literal without quotes, e.g. `3d` or `500Mi`".into())
            }
            (Ty::Int, Ty::String, _) => Some("write the number without quotes".into()),
            (Ty::List(_), t, _) if !matches!(t, Ty::List(_)) => {
                Some("wrap the value in `[ … ]`".into())
            }
            (Ty::String, Ty::Secret, _) => Some(
                "a Secret is never turned into plain text; declare the field as `Secret`".into(),
            ),
            _ => None,
        };
        if let Some(h) = help {
            d = d.help(h);
        }
        self.error(d);
    }

    /// The type of an expression. `expected` guides literals that need context
    /// (enum variants, `5m`, `null`, `{}` and untyped record literals).
    fn infer(&mut self, expr: &'p Expr, expected: Option<&Ty>, scope: &Scope) -> Ty {
        let file = scope.file;
        let want = expected.map(|t| t.required().clone());
        match &expr.kind {
            ExprKind::Int(_) => {
                if want == Some(Ty::Float) {
                    self.resolve(file, expr.span, Resolution::IntAsFloat);
                    Ty::Float
                } else {
                    Ty::Int
                }
            }
            ExprKind::Float(_) => Ty::Float,
            ExprKind::Bool(_) => Ty::Bool,
            ExprKind::Null => match expected {
                Some(t @ Ty::Optional(_)) => t.clone(),
                Some(Ty::Error) | None => Ty::Null,
                Some(t) => {
                    let t = self.show(t);
                    self.error(
                        Diagnostic::error("E0214", format!("expected {t}, found `null`"))
                            .at(file, expr.span, "not optional")
                            .help("only optional types (`T?`) accept null"),
                    );
                    Ty::Error
                }
            },
            ExprKind::Str(parts) => {
                for part in parts {
                    if let StrPart::Interpolation(e) = part {
                        let t = self.infer(e, None, scope);
                        self.check_interpolable(e, &t, file);
                    }
                }
                Ty::String
            }
            ExprKind::UnitNumber { number, unit } => {
                self.unit_number(expr, number, unit, want.as_ref(), file)
            }
            ExprKind::List(items) => {
                let elem_expected = match &want {
                    Some(Ty::List(t)) => Some((**t).clone()),
                    _ => None,
                };
                let mut elem: Option<Ty> = elem_expected.clone();
                for item in items {
                    match &elem {
                        Some(t) => {
                            let t = t.clone();
                            let actual = self.infer(item, Some(&t), scope);
                            if !assignable(&actual, &t) {
                                if elem_expected.is_some() {
                                    self.mismatch(item, &actual, &t, file);
                                } else {
                                    self.error(
                                        Diagnostic::error(
                                            "E0213",
                                            format!(
                                                "list elements must have one type: expected {}, found {}",
                                                self.show(&t),
                                                self.show(&actual)
                                            ),
                                        )
                                        .at(file, item.span, format!("this is {}", self.show(&actual)))
                                        .help("every element of a list has the type of the first one"),
                                    );
                                }
                            } else if t == Ty::Error {
                                elem = Some(actual);
                            }
                        }
                        None => elem = Some(self.infer(item, None, scope)),
                    }
                }
                Ty::List(Box::new(elem.unwrap_or(Ty::Error)))
            }
            ExprKind::Map(entries) => {
                if entries.is_empty()
                    && let Some(Ty::Record(rid)) = &want
                {
                    let rid = *rid;
                    self.resolve(file, expr.span, Resolution::Record(rid));
                    self.check_block(&[], rid, scope, None, expr.span);
                    return Ty::Record(rid);
                }
                let value_expected = match &want {
                    Some(Ty::Map(t)) => Some((**t).clone()),
                    _ => None,
                };
                let mut value_ty = value_expected.clone();
                let mut keys: HashMap<&str, Span> = HashMap::new();
                for (key, value) in entries {
                    if let Some(first) = keys.get(key.value.as_str()) {
                        self.error(
                            Diagnostic::error(
                                "E0218",
                                format!("key `{}` appears twice", key.value),
                            )
                            .at(file, key.span, "duplicate key")
                            .also(file, *first, "first here"),
                        );
                    }
                    keys.insert(&key.value, key.span);
                    match &value_ty {
                        Some(t) => {
                            let t = t.clone();
                            self.expect(value, &t, scope);
                        }
                        None => value_ty = Some(self.infer(value, None, scope)),
                    }
                }
                Ty::Map(Box::new(value_ty.unwrap_or(Ty::Error)))
            }
            ExprKind::Record { ty, body } => {
                let rid = match ty {
                    Some(t) => match self.type_expr(scope.module, file, t) {
                        Ty::Record(r) => r,
                        Ty::Error => return Ty::Error,
                        other => {
                            self.error(
                                Diagnostic::error(
                                    "E0202",
                                    format!("{} is not a record type", self.show(&other)),
                                )
                                .at(
                                    file,
                                    t.span,
                                    "cannot build this with `{ … }`",
                                ),
                            );
                            return Ty::Error;
                        }
                    },
                    None => match &want {
                        Some(Ty::Record(r)) => *r,
                        Some(Ty::Error) => return Ty::Error,
                        _ => {
                            self.error(
                                Diagnostic::error(
                                    "E0219",
                                    "cannot tell which type this record has",
                                )
                                .at(file, expr.span, "untyped record")
                                .help("name the type: `TypeName { … }`"),
                            );
                            return Ty::Error;
                        }
                    },
                };
                self.resolve(file, expr.span, Resolution::Record(rid));
                let header = ty.as_ref().map_or(expr.span, |t| t.span);
                self.check_block(&body.entries, rid, scope, None, header);
                Ty::Record(rid)
            }
            ExprKind::Name(ident) => self.name(ident, want.as_ref(), scope),
            ExprKind::Field(base, name) => {
                self.field_access(expr, base, name, want.as_ref(), scope)
            }
            ExprKind::Index(base, index) => {
                let base_ty = self.infer(base, None, scope);
                match base_ty.clone() {
                    Ty::List(elem) => {
                        self.expect(index, &Ty::Int, scope);
                        *elem
                    }
                    Ty::Map(value) => {
                        self.expect(index, &Ty::String, scope);
                        *value
                    }
                    Ty::Error => {
                        self.infer(index, None, scope);
                        Ty::Error
                    }
                    other => {
                        self.error(
                            Diagnostic::error(
                                "E0211",
                                format!("cannot index into {}", self.show(&other)),
                            )
                            .at(file, base.span, format!("this is {}", self.show(&other)))
                            .help("only lists (`xs[0]`) and maps (`m[\"key\"]`) can be indexed"),
                        );
                        Ty::Error
                    }
                }
            }
            ExprKind::Call(name, args) => self.call(expr, name, args, scope),
            ExprKind::Unary(op, operand) => {
                let t = self.infer(operand, expected, scope);
                let ok = match op {
                    UnaryOp::Neg => matches!(
                        t,
                        Ty::Int | Ty::Float | Ty::Duration | Ty::Quantity | Ty::Error
                    ),
                    UnaryOp::Not => matches!(t, Ty::Bool | Ty::Error),
                };
                if ok {
                    t
                } else {
                    self.error(
                        Diagnostic::error(
                            "E0209",
                            format!("`{}` cannot be applied to {}", op.symbol(), self.show(&t)),
                        )
                        .at(
                            file,
                            expr.span,
                            format!("operand is {}", self.show(&t)),
                        ),
                    );
                    Ty::Error
                }
            }
            ExprKind::Binary(BinaryOp::Coalesce, lhs, rhs) => {
                self.coalesce(lhs, rhs, expected, scope)
            }
            ExprKind::Binary(op, lhs, rhs) => self.binary(expr, *op, lhs, rhs, scope),
            ExprKind::If(cond, then, otherwise) => {
                self.expect(cond, &Ty::Bool, scope);
                let t = self.infer(then, expected, scope);
                let target = match expected {
                    Some(e) => e.clone(),
                    None => t.clone(),
                };
                let e = self.infer(otherwise, Some(&target), scope);
                if expected.is_none() && !assignable(&e, &t) {
                    if assignable(&t, &e) {
                        return e;
                    }
                    self.error(
                        Diagnostic::error(
                            "E0202",
                            format!(
                                "`if` branches differ: {} and {}",
                                self.show(&t),
                                self.show(&e)
                            ),
                        )
                        .at(file, otherwise.span, format!("this is {}", self.show(&e)))
                        .also(
                            file,
                            then.span,
                            format!("this is {}", self.show(&t)),
                        ),
                    );
                    return Ty::Error;
                }
                if let Some(x) = expected {
                    if !assignable(&e, x) {
                        self.mismatch(otherwise, &e, x, file);
                    }
                    // Point at the branch, not at the whole `if` (reported here, once).
                    if !assignable(&t, x) {
                        self.mismatch(then, &t, x, file);
                        return Ty::Error;
                    }
                }
                t
            }
            ExprKind::Comprehension {
                body,
                var,
                iter,
                filter,
            } => {
                let iter_ty = self.infer(iter, None, scope);
                let elem = match iter_ty {
                    Ty::List(e) => *e,
                    Ty::Map(_) => Ty::String,
                    Ty::Error => Ty::Error,
                    other => {
                        self.error(
                            Diagnostic::error(
                                "E0202",
                                format!("cannot iterate over {}", self.show(&other)),
                            )
                            .at(file, iter.span, "expected a list or a map")
                            .help("`[x for x in LIST]`; over a map, `x` is each key"),
                        );
                        Ty::Error
                    }
                };
                self.resolve(file, var.span, Resolution::Local);
                let inner = scope.with(Frame::Local(var.name.clone(), elem));
                if let Some(f) = filter {
                    self.expect(f, &Ty::Bool, &inner);
                }
                let elem_expected = match &want {
                    Some(Ty::List(t)) => Some((**t).clone()),
                    _ => None,
                };
                let t = self.infer(body, elem_expected.as_ref(), &inner);
                Ty::List(Box::new(t))
            }
            ExprKind::Paren(inner) => self.infer(inner, expected, scope),
        }
    }

    fn check_interpolable(&mut self, e: &Expr, t: &Ty, file: FileId) {
        match t {
            Ty::String | Ty::Int | Ty::Float | Ty::Bool | Ty::Duration | Ty::Quantity | Ty::Enum(_) | Ty::Error => {}
            Ty::Secret => self.error(
                Diagnostic::error("E0215", "a Secret cannot be interpolated into a string")
                    .at(file, e.span, "this is a Secret")
                    .help("secrets are never turned into plain text; pass the Secret itself to a `Secret` field"),
            ),
            other => self.error(
                Diagnostic::error("E0215", format!("cannot interpolate {} into a string", self.show(other)))
                    .at(file, e.span, format!("this is {}", self.show(other)))
                    .help("interpolate strings, numbers, booleans, durations, quantities or enum values; use `join(list, \",\")` for lists"),
            ),
        }
    }

    fn unit_number(
        &mut self,
        expr: &Expr,
        number: &str,
        unit: &str,
        want: Option<&Ty>,
        file: FileId,
    ) -> Ty {
        let is_duration_unit = DURATION_UNITS.contains(&unit);
        let is_quantity_unit = QUANTITY_UNITS.contains(&unit);
        if !is_duration_unit && !is_quantity_unit {
            return Ty::Error; // reported by the parser
        }
        let as_duration = match want {
            Some(Ty::Duration) => true,
            Some(Ty::Quantity) => false,
            _ => is_duration_unit,
        };
        if as_duration && !is_duration_unit {
            self.error(
                Diagnostic::error(
                    "E0202",
                    format!("expected `Duration`, found quantity `{number}{unit}`"),
                )
                .at(file, expr.span, "a quantity, not a duration")
                .help("durations use ms, s, m, h or d: `90s`, `5m`, `8h`, `3d`"),
            );
            return Ty::Error;
        }
        if !as_duration && !is_quantity_unit {
            self.error(
                Diagnostic::error(
                    "E0202",
                    format!("expected `Quantity`, found duration `{number}{unit}`"),
                )
                .at(file, expr.span, "a duration, not a quantity")
                .help("quantities use m, k, M, G, Ki, Mi, Gi …: `250m`, `500Mi`, `2Gi`"),
            );
            return Ty::Error;
        }
        if as_duration {
            if crate::units::parse_duration_ms(number, unit).is_none() {
                self.error(
                    Diagnostic::error("E0007", format!("invalid duration `{number}{unit}`"))
                        .at(
                            file,
                            expr.span,
                            "not a whole number of milliseconds, or too large",
                        )
                        .help("write e.g. `90s`, `1.5h`, `3d`"),
                );
            }
            self.resolve(file, expr.span, Resolution::Duration);
            Ty::Duration
        } else {
            self.resolve(file, expr.span, Resolution::Quantity);
            Ty::Quantity
        }
    }

    fn name(&mut self, ident: &Ident, want: Option<&Ty>, scope: &Scope) -> Ty {
        let file = scope.file;
        // An expected enum makes its variants visible without qualification.
        if let Some(Ty::Enum(e)) = want
            && let Some(i) = self
                .decls
                .enum_def(*e)
                .variants
                .iter()
                .position(|v| v.name == ident.name)
        {
            self.resolve(file, ident.span, Resolution::Variant(*e, i));
            return Ty::Enum(*e);
        }
        let mut depth = 0;
        for frame in scope.frames.iter().rev() {
            match frame {
                Frame::Local(name, ty) if *name == ident.name => {
                    self.resolve(file, ident.span, Resolution::Local);
                    return ty.clone();
                }
                Frame::Record(rid) => {
                    if let Some((index, field)) = self.decls.record(*rid).field(&ident.name) {
                        let ty = field.ty.clone();
                        self.resolve(
                            file,
                            ident.span,
                            Resolution::Field {
                                depth,
                                record: *rid,
                                field: index,
                            },
                        );
                        return ty;
                    }
                    depth += 1;
                }
                Frame::ClusterContext if ident.name == "cluster" => {
                    if let Some(c) = self.decls.cluster_type {
                        self.resolve(file, ident.span, Resolution::ClusterContext);
                        return Ty::Record(c);
                    }
                }
                _ => {}
            }
        }
        match self.decls.lookup(scope.module, &ident.name).cloned() {
            Some(Def::Let(m, i)) => {
                self.resolve(file, ident.span, Resolution::Let(m, i));
                if self.let_state.get(&(m, i)) == Some(&LetState::InProgress) {
                    self.error(
                        Diagnostic::error(
                            "E0305",
                            format!("`{}` is defined in terms of itself", ident.name),
                        )
                        .at(file, ident.span, "cyclic reference")
                        .help(
                            "a let binding cannot depend on itself, directly or through other lets",
                        ),
                    );
                    return Ty::Error;
                }
                self.let_type(m, i)
            }
            Some(Def::Channel(c)) => {
                self.resolve(file, ident.span, Resolution::Channel(c));
                match self.decls.channel_type {
                    Some(r) => Ty::Record(r),
                    None => Ty::Error,
                }
            }
            Some(Def::Record(_) | Def::Enum(_) | Def::TypeAlias(_)) => {
                self.error(
                    Diagnostic::error("E0103", format!("`{}` is a type, not a value", ident.name))
                        .at(file, ident.span, "type used as a value")
                        .help(format!(
                            "build a record with `{} {{ … }}`, or name a variant as `{}.VARIANT`",
                            ident.name, ident.name
                        )),
                );
                Ty::Error
            }
            Some(Def::Alias(_)) => {
                self.error(
                    Diagnostic::error(
                        "E0103",
                        format!("`{}` is a module, not a value", ident.name),
                    )
                    .at(file, ident.span, "module alias")
                    .help(format!("use one of its names: `{}.NAME`", ident.name)),
                );
                Ty::Error
            }
            None => {
                self.unknown_name(ident, want, scope);
                Ty::Error
            }
        }
    }

    fn unknown_name(&mut self, ident: &Ident, want: Option<&Ty>, scope: &Scope) {
        let file = scope.file;
        if let Some(Ty::Enum(e)) = want {
            let def = self.decls.enum_def(*e);
            let names: Vec<&str> = def.variants.iter().map(|v| v.name.as_str()).collect();
            let mut d = Diagnostic::error(
                "E0204",
                format!("`{}` is not a variant of `{}`", ident.name, def.name),
            );
            d = match suggest(&ident.name, names.iter().copied()) {
                Some(s) => d.at(file, ident.span, format!("did you mean `{s}`?")),
                None => d.at(file, ident.span, "unknown variant"),
            };
            d = d.help(format!("`{}` is one of: {}", def.name, names.join(", ")));
            self.error(d);
            return;
        }
        if want.is_some() && want == self.decls.channel_type.map(Ty::Record).as_ref() {
            let channels: Vec<String> = self
                .decls
                .scopes
                .get(&scope.module)
                .map(|s| {
                    let mut v: Vec<String> = s
                        .iter()
                        .filter(|(_, d)| matches!(d, Def::Channel(_)))
                        .map(|(n, _)| n.clone())
                        .collect();
                    v.sort();
                    v
                })
                .unwrap_or_default();
            let mut d = Diagnostic::error("E0205", format!("unknown channel `{}`", ident.name));
            d = match suggest(&ident.name, channels.iter().map(String::as_str)) {
                Some(s) => d.at(file, ident.span, format!("did you mean `{s}`?")),
                None => d.at(file, ident.span, "no channel with this name is in scope"),
            };
            d = if channels.is_empty() {
                d.help("declare it with `channel NAME { … }` or import the file that does")
            } else {
                d.help(format!("channels in scope: {}", channels.join(", ")))
            };
            self.error(d);
            return;
        }
        let mut candidates: Vec<String> = Vec::new();
        for frame in &scope.frames {
            match frame {
                Frame::Local(n, _) => candidates.push(n.clone()),
                Frame::Record(r) => {
                    candidates.extend(self.decls.record(*r).fields.iter().map(|f| f.name.clone()))
                }
                Frame::ClusterContext => candidates.push("cluster".into()),
            }
        }
        if let Some(s) = self.decls.scopes.get(&scope.module) {
            candidates.extend(
                s.iter()
                    .filter(|(_, d)| matches!(d, Def::Let(..) | Def::Channel(_)))
                    .map(|(n, _)| n.clone()),
            );
        }
        let mut d = Diagnostic::error("E0103", format!("unknown name `{}`", ident.name));
        if let Some(help) = self.variant_help(ident, scope) {
            self.error(d.at(file, ident.span, "not found in this scope").help(help));
            return;
        }
        d = match suggest(&ident.name, candidates.iter().map(String::as_str)) {
            Some(s) => d.at(file, ident.span, format!("did you mean `{s}`?")),
            None => d.at(file, ident.span, "not found in this scope").help(
                "names are fields of the enclosing blocks, `let` bindings, channels and imports",
            ),
        };
        self.error(d);
    }

    /// Help for an unknown name that is a variant of an enum in scope: how to name it.
    fn variant_help(&self, ident: &Ident, scope: &Scope) -> Option<String> {
        let mut enums: Vec<(&str, EnumId)> = self
            .decls
            .scopes
            .get(&scope.module)?
            .iter()
            .filter_map(|(name, def)| match def {
                Def::Enum(e)
                    if self
                        .decls
                        .enum_def(*e)
                        .variants
                        .iter()
                        .any(|v| v.name == ident.name) =>
                {
                    Some((name.as_str(), *e))
                }
                _ => None,
            })
            .collect();
        enums.sort();
        enums.dedup_by_key(|(_, e)| *e);
        let variant = &ident.name;
        match enums.as_slice() {
            [] => None,
            [(name, _)] => Some(match &self.untyped_let {
                Some((binding, value)) if *value == ident.span => format!(
                    "`{variant}` is a variant of `{name}`: write `{name}.{variant}`, or give the `let` a type: `let {binding}: {name} = {variant}`"
                ),
                _ => format!("`{variant}` is a variant of `{name}`: write `{name}.{variant}`"),
            }),
            several => Some(format!(
                "`{variant}` is a variant of several enums; name one: {}",
                several
                    .iter()
                    .map(|(name, _)| format!("`{name}.{variant}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn field_access(
        &mut self,
        expr: &Expr,
        base: &'p Expr,
        name: &Ident,
        want: Option<&Ty>,
        scope: &Scope,
    ) -> Ty {
        let file = scope.file;
        // `Enum.variant` and `alias.name` are paths, not field accesses.
        if let ExprKind::Name(b) = &base.kind {
            let shadowed = self.is_local_name(&b.name, scope);
            if !shadowed {
                match self.decls.lookup(scope.module, &b.name).cloned() {
                    Some(Def::Enum(e)) => {
                        let def = self.decls.enum_def(e);
                        if let Some(i) = def.variants.iter().position(|v| v.name == name.name) {
                            self.resolve(file, expr.span, Resolution::Variant(e, i));
                            return Ty::Enum(e);
                        }
                        let names: Vec<&str> =
                            def.variants.iter().map(|v| v.name.as_str()).collect();
                        let mut d = Diagnostic::error(
                            "E0204",
                            format!("`{}` is not a variant of `{}`", name.name, def.name),
                        );
                        d = match suggest(&name.name, names.iter().copied()) {
                            Some(s) => d.at(file, name.span, format!("did you mean `{s}`?")),
                            None => d.at(file, name.span, "unknown variant"),
                        };
                        d = d.help(format!("`{}` is one of: {}", def.name, names.join(", ")));
                        self.error(d);
                        return Ty::Error;
                    }
                    Some(Def::Alias(targets)) => {
                        let found = targets
                            .iter()
                            .find_map(|m| self.decls.lookup(*m, &name.name).cloned());
                        return match found {
                            Some(Def::Let(m, i)) => {
                                self.resolve(file, expr.span, Resolution::Let(m, i));
                                self.let_type(m, i)
                            }
                            Some(Def::Channel(c)) => {
                                self.resolve(file, expr.span, Resolution::Channel(c));
                                self.decls.channel_type.map_or(Ty::Error, Ty::Record)
                            }
                            _ => {
                                let names: Vec<String> = targets
                                    .iter()
                                    .flat_map(|m| {
                                        self.decls
                                            .scopes
                                            .get(m)
                                            .into_iter()
                                            .flat_map(|s| s.keys().cloned())
                                    })
                                    .collect();
                                let mut d = Diagnostic::error(
                                    "E0103",
                                    format!("module `{}` has no value `{}`", b.name, name.name),
                                );
                                d = match suggest(&name.name, names.iter().map(String::as_str)) {
                                    Some(s) => {
                                        d.at(file, name.span, format!("did you mean `{s}`?"))
                                    }
                                    None => d.at(file, name.span, "not declared in that module"),
                                };
                                self.error(d);
                                Ty::Error
                            }
                        };
                    }
                    _ => {}
                }
            }
        }
        let _ = want;
        let base_ty = self.infer(base, None, scope);
        match &base_ty {
            Ty::Record(r) => match self.decls.record(*r).field(&name.name) {
                Some((index, f)) => {
                    let ty = f.ty.clone();
                    self.resolve(
                        file,
                        name.span,
                        Resolution::FieldEntry {
                            record: *r,
                            field: index,
                        },
                    );
                    ty
                }
                None => {
                    let record = self.decls.record(*r).clone();
                    self.unknown_field(&record, name, file, false);
                    Ty::Error
                }
            },
            Ty::Error => Ty::Error,
            Ty::Optional(_) => {
                self.error(
                    Diagnostic::error("E0211", format!("{} may be null", self.show(&base_ty)))
                        .at(file, base.span, "may be null")
                        .help("give a fallback first: `(x ?? default).field`"),
                );
                Ty::Error
            }
            other => {
                self.error(
                    Diagnostic::error("E0211", format!("{} has no fields", self.show(other)))
                        .at(file, name.span, format!("no field `{}`", name.name))
                        .help("only records have fields; maps are indexed with `m[\"key\"]`"),
                );
                Ty::Error
            }
        }
    }

    fn is_local_name(&self, name: &str, scope: &Scope) -> bool {
        scope.frames.iter().any(|f| match f {
            Frame::Local(n, _) => n == name,
            Frame::Record(r) => self.decls.record(*r).field(name).is_some(),
            Frame::ClusterContext => name == "cluster",
        })
    }

    fn call(&mut self, expr: &Expr, name: &Ident, args: &'p [Expr], scope: &Scope) -> Ty {
        let file = scope.file;
        let Some(builtin) = builtins::lookup(&name.name) else {
            let names = super::BUILTINS.iter().map(|(n, ..)| *n);
            let mut d = Diagnostic::error("E0208", format!("unknown function `{}`", name.name));
            d = match suggest(&name.name, names) {
                Some(s) => d.at(file, name.span, format!("did you mean `{s}`?")),
                None => d.at(file, name.span, "not a builtin").help(format!(
                    "builtins: {}",
                    super::BUILTINS
                        .iter()
                        .map(|(n, ..)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            self.error(d);
            for a in args {
                self.infer(a, None, scope);
            }
            return Ty::Error;
        };
        self.resolve(file, name.span, Resolution::Builtin(builtin));
        let arity = match builtin {
            Builtin::Len
            | Builtin::Lower
            | Builtin::Upper
            | Builtin::IsDigits
            | Builtin::IsDnsLabel
            | Builtin::ToString
            | Builtin::Base64
            | Builtin::Sha256
            | Builtin::Keys
            | Builtin::Values
            | Builtin::Range
            | Builtin::Seconds => 1,
            Builtin::Join
            | Builtin::Split
            | Builtin::Contains
            | Builtin::StartsWith
            | Builtin::EndsWith
            | Builtin::Secret
            | Builtin::Min
            | Builtin::Max => 2,
            Builtin::Replace | Builtin::CidrSubnet => 3,
        };
        let signature = builtins::signature(builtin);
        if args.len() != arity {
            self.error(
                Diagnostic::error(
                    "E0208",
                    format!(
                        "`{}` takes {arity} argument{}, found {}",
                        name.name,
                        if arity == 1 { "" } else { "s" },
                        args.len()
                    ),
                )
                .at(file, expr.span, "wrong number of arguments")
                .help(format!("signature: {signature}")),
            );
            for a in args {
                self.infer(a, None, scope);
            }
            return Ty::Error;
        }
        let bad_arg = |me: &mut Self, arg: &Expr, t: &Ty| {
            let shown = me.show(t);
            me.error(
                Diagnostic::error("E0202", format!("`{}` cannot take {shown}", name.name))
                    .at(file, arg.span, format!("this is {shown}"))
                    .help(format!("signature: {signature}")),
            );
            Ty::Error
        };
        use Builtin::*;
        match builtin {
            Len => {
                let t = self.infer(&args[0], None, scope);
                match t {
                    Ty::String | Ty::List(_) | Ty::Map(_) | Ty::Error => Ty::Int,
                    other => bad_arg(self, &args[0], &other),
                }
            }
            Lower | Upper | Base64 | Sha256 => {
                self.expect(&args[0], &Ty::String, scope);
                Ty::String
            }
            IsDigits | IsDnsLabel => {
                self.expect(&args[0], &Ty::String, scope);
                Ty::Bool
            }
            Join => {
                self.expect(&args[0], &Ty::List(Box::new(Ty::String)), scope);
                self.expect(&args[1], &Ty::String, scope);
                Ty::String
            }
            Split => {
                self.expect(&args[0], &Ty::String, scope);
                self.expect(&args[1], &Ty::String, scope);
                Ty::List(Box::new(Ty::String))
            }
            StartsWith | EndsWith => {
                self.expect(&args[0], &Ty::String, scope);
                self.expect(&args[1], &Ty::String, scope);
                Ty::Bool
            }
            Replace => {
                for a in args {
                    self.expect(a, &Ty::String, scope);
                }
                Ty::String
            }
            Contains => {
                let hay = self.infer(&args[0], None, scope);
                match hay {
                    Ty::List(elem) => {
                        self.expect(&args[1], &elem, scope);
                    }
                    Ty::Map(_) | Ty::String => {
                        self.expect(&args[1], &Ty::String, scope);
                    }
                    Ty::Error => {
                        self.infer(&args[1], None, scope);
                    }
                    other => {
                        bad_arg(self, &args[0], &other);
                    }
                }
                Ty::Bool
            }
            ToString => {
                let t = self.infer(&args[0], None, scope);
                match t {
                    Ty::String
                    | Ty::Int
                    | Ty::Float
                    | Ty::Bool
                    | Ty::Duration
                    | Ty::Quantity
                    | Ty::Enum(_)
                    | Ty::Error => Ty::String,
                    other => bad_arg(self, &args[0], &other),
                }
            }
            Secret => {
                self.expect(&args[0], &Ty::String, scope);
                self.expect(&args[1], &Ty::String, scope);
                Ty::Secret
            }
            Keys => match self.infer(&args[0], None, scope) {
                Ty::Map(_) | Ty::Error => Ty::List(Box::new(Ty::String)),
                other => bad_arg(self, &args[0], &other),
            },
            Values => match self.infer(&args[0], None, scope) {
                Ty::Map(v) => Ty::List(v),
                Ty::Error => Ty::Error,
                other => bad_arg(self, &args[0], &other),
            },
            Min | Max => {
                let a = self.infer(&args[0], None, scope);
                match a {
                    Ty::Int | Ty::Float | Ty::Duration | Ty::Quantity => {
                        self.expect(&args[1], &a, scope);
                        a
                    }
                    Ty::Error => {
                        self.infer(&args[1], None, scope);
                        Ty::Error
                    }
                    other => bad_arg(self, &args[0], &other),
                }
            }
            Range => {
                self.expect(&args[0], &Ty::Int, scope);
                Ty::List(Box::new(Ty::Int))
            }
            Seconds => {
                self.expect(&args[0], &Ty::Duration, scope);
                Ty::Int
            }
            CidrSubnet => {
                self.expect(&args[0], &Ty::String, scope);
                self.expect(&args[1], &Ty::Int, scope);
                self.expect(&args[2], &Ty::Int, scope);
                Ty::String
            }
        }
    }

    /// `x ?? y`: with `x: T?`, `y` is a `T` (the result is `T`) or a `T?` (the result is
    /// `T?`, so fallbacks chain: `a ?? b ?? 0`). With `x` always null, the result is `y`.
    fn coalesce(
        &mut self,
        lhs: &'p Expr,
        rhs: &'p Expr,
        expected: Option<&Ty>,
        scope: &Scope,
    ) -> Ty {
        let guide = expected.map(|t| t.required().clone().optional());
        let l = self.infer(lhs, guide.as_ref(), scope);
        let inner = match l {
            Ty::Null => return self.infer(rhs, expected, scope),
            Ty::Error => {
                self.infer(rhs, guide.as_ref(), scope);
                return Ty::Error;
            }
            Ty::Optional(t) => *t,
            other => other,
        };
        let fallback = inner.clone().optional();
        let r = self.infer(rhs, Some(&fallback), scope);
        if !assignable(&r, &fallback) {
            self.mismatch(rhs, &r, &inner, scope.file);
            return inner;
        }
        match r {
            Ty::Optional(_) | Ty::Null => fallback,
            _ => inner,
        }
    }

    fn binary(
        &mut self,
        expr: &Expr,
        op: BinaryOp,
        lhs: &'p Expr,
        rhs: &'p Expr,
        scope: &Scope,
    ) -> Ty {
        let file = scope.file;
        use BinaryOp::*;
        match op {
            And | Or => {
                self.expect(lhs, &Ty::Bool, scope);
                self.expect(rhs, &Ty::Bool, scope);
                return Ty::Bool;
            }
            _ => {}
        }
        let l = self.infer(lhs, None, scope);
        // Let the left side guide literals on the right (`x == production`, `d > 5m`);
        // an optional one may be compared with `null`.
        let guide = match &l {
            Ty::Optional(t) if !matches!(op, Eq | Ne) => (**t).clone(),
            t => t.clone(),
        };
        let r = self.infer(rhs, Some(&guide), scope);
        let (l, r) = promote(l, r);
        if l == Ty::Error || r == Ty::Error {
            return match op {
                Eq | Ne | Lt | Le | Gt | Ge => Ty::Bool,
                _ => Ty::Error,
            };
        }
        let result = match op {
            Eq | Ne => (assignable(&l, &r) || assignable(&r, &l)).then_some(Ty::Bool),
            Lt | Le | Gt | Ge => (l == r
                && matches!(
                    l,
                    Ty::Int | Ty::Float | Ty::Duration | Ty::Quantity | Ty::String
                ))
            .then_some(Ty::Bool),
            Add => match (&l, &r) {
                (Ty::Int, Ty::Int)
                | (Ty::Float, Ty::Float)
                | (Ty::String, Ty::String)
                | (Ty::Duration, Ty::Duration)
                | (Ty::Quantity, Ty::Quantity) => Some(l.clone()),
                (Ty::List(a), Ty::List(b)) if assignable(b, a) => Some(l.clone()),
                (Ty::List(a), Ty::List(b)) if assignable(a, b) => Some(r.clone()),
                (Ty::Map(a), Ty::Map(b)) if a == b => Some(l.clone()),
                _ => None,
            },
            Sub => match (&l, &r) {
                (Ty::Int, Ty::Int)
                | (Ty::Float, Ty::Float)
                | (Ty::Duration, Ty::Duration)
                | (Ty::Quantity, Ty::Quantity) => Some(l.clone()),
                _ => None,
            },
            Mul => match (&l, &r) {
                (Ty::Int, Ty::Int) | (Ty::Float, Ty::Float) => Some(l.clone()),
                (Ty::Duration | Ty::Quantity, Ty::Int) => Some(l.clone()),
                (Ty::Int, Ty::Duration | Ty::Quantity) => Some(r.clone()),
                _ => None,
            },
            Div => match (&l, &r) {
                (Ty::Int, Ty::Int) | (Ty::Float, Ty::Float) => Some(l.clone()),
                (Ty::Duration | Ty::Quantity, Ty::Int) => Some(l.clone()),
                _ => None,
            },
            Rem => matches!((&l, &r), (Ty::Int, Ty::Int)).then_some(Ty::Int),
            And | Or | Coalesce => None,
        };
        match result {
            Some(t) => t,
            None => {
                let help = match (op, &l, &r) {
                    (Add, Ty::String, _) | (Add, _, Ty::String) => {
                        "to build a string from other values use interpolation: \"${x}\""
                            .to_string()
                    }
                    (Lt | Le | Gt | Ge, _, _) => {
                        "both sides must have the same numeric, duration, quantity or string type"
                            .into()
                    }
                    _ => format!("`{}` needs operands of matching types", op.symbol()),
                };
                self.error(
                    Diagnostic::error(
                        "E0209",
                        format!(
                            "`{}` cannot be applied to {} and {}",
                            op.symbol(),
                            self.show(&l),
                            self.show(&r)
                        ),
                    )
                    .at(
                        file,
                        expr.span,
                        format!(
                            "{} {} {}",
                            self.decls.show(&l),
                            op.symbol(),
                            self.decls.show(&r)
                        ),
                    )
                    .help(help),
                );
                Ty::Error
            }
        }
    }
}

/// Int operands meet Float ones as Float.
fn promote(l: Ty, r: Ty) -> (Ty, Ty) {
    match (&l, &r) {
        (Ty::Int, Ty::Float) => (Ty::Float, Ty::Float),
        (Ty::Float, Ty::Int) => (Ty::Float, Ty::Float),
        _ => (l, r),
    }
}

/// Whether a value of type `actual` may be used where `expected` is wanted.
pub(super) fn assignable(actual: &Ty, expected: &Ty) -> bool {
    match (actual, expected) {
        (Ty::Error, _) | (_, Ty::Error) => true,
        (a, b) if a == b => true,
        (Ty::Int, Ty::Float) => true,
        (Ty::Null, Ty::Optional(_)) => true,
        (Ty::Optional(a), Ty::Optional(b)) => assignable(a, b),
        (a, Ty::Optional(b)) => assignable(a, b),
        (Ty::List(a), Ty::List(b)) => assignable(a, b),
        (Ty::Map(a), Ty::Map(b)) => assignable(a, b),
        _ => false,
    }
}
