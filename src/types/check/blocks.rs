//! Pass 2: bodies of lets, types, checks, channels and clusters, and blocks against records.

use std::collections::HashMap;

use super::{Checker, Frame, LetState, Scope};
use crate::codes::Code;
use crate::diagnostic::{did_you_mean, suggest};
use crate::syntax::ast::*;
use crate::types::*;

impl<'p> Checker<'p> {
    pub(super) fn check_bodies(&mut self) {
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
        let record = self.decls.records[rid.0 as usize].clone();
        for field in &record.fields {
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
    pub(super) fn let_type(&mut self, module: ModuleId, item: usize) -> Ty {
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
    pub(super) fn check_block(
        &mut self,
        entries: &'p [Entry],
        rid: RecordId,
        scope: &Scope,
        label: Option<&PlainString>,
        header: Span,
    ) {
        let cx = BlockContext {
            rid,
            record: self.decls.records[rid.0 as usize].clone(),
            outer: scope,
            inner: scope.with(Frame::Record(rid)),
            label,
        };
        let mut progress = BlockProgress::new(cx.record.fields.len());
        self.block_label(&cx, &mut progress);
        for entry in entries {
            match entry {
                Entry::Field { name, value, .. } => {
                    self.field_entry(&cx, &mut progress, name, value);
                }
                Entry::Block {
                    name, label, body, ..
                } => {
                    if cx.record.block_field(&name.name).is_some() {
                        self.repeated_block(&cx, &mut progress, name, label.as_ref(), body);
                    } else {
                        self.nested_block(&cx, &mut progress, name, label.as_ref(), body);
                    }
                }
                Entry::Spread { expr, .. } => self.spread_entry(&cx, &mut progress, expr),
            }
        }
        if !progress.complete_spread {
            self.missing_fields(&cx, &progress, header);
        }
    }

    /// The block's label sets the record's label field; a record without one takes no label.
    fn block_label(&mut self, cx: &BlockContext, progress: &mut BlockProgress) {
        match (cx.label, cx.record.label_field()) {
            (Some(label), Some(index)) => {
                progress.set.insert(index, label.span);
            }
            (Some(label), None) => self.error(
                Diagnostic::error(
                    Code::E0207,
                    format!("`{}` blocks take no label", cx.record.name),
                )
                .at(cx.outer.file, label.span, "remove this label"),
            ),
            (None, _) => {}
        }
    }

    /// `name = value`: a known field, set once (lists built from blocks may also be assigned).
    fn field_entry(
        &mut self,
        cx: &BlockContext,
        progress: &mut BlockProgress,
        name: &Ident,
        value: &'p Expr,
    ) {
        let file = cx.outer.file;
        let record = &cx.record;
        let Some((index, field)) = record.field(&name.name) else {
            // Check the value as the field the misspelling probably meant, so
            // `enviroment = test` does not also report `test` as unknown.
            let meant = self.unknown_field(record, name, file, false);
            let meant_ty = meant
                .as_deref()
                .and_then(|m| record.field(m))
                .map(|(_, f)| f.ty.clone());
            self.infer(value, meant_ty.as_ref(), &cx.inner);
            progress.misspelt.extend(meant);
            return;
        };
        self.resolve(
            file,
            name.span,
            Resolution::FieldEntry {
                record: cx.rid,
                field: index,
            },
        );
        let earlier = if field.block_name.is_some() {
            // Repeated blocks and spread lists add to an assigned list.
            progress.assigned.get(index)
        } else {
            progress.set.get(index)
        };
        if field.is_label && cx.label.is_some() {
            self.error(
                Diagnostic::error(
                    Code::E0217,
                    format!("`{}` is set by the block label", field.name),
                )
                .at(file, name.span, "remove this line")
                .help(format!(
                    "the label in `\"…\" {{` is the {}'s `{}`",
                    record.name, field.name
                )),
            );
        } else if let Some(first) = earlier {
            self.error(
                Diagnostic::error(Code::E0108, format!("field `{}` is set twice", field.name))
                    .at(file, name.span, "set again here")
                    .also(file, first, "first set here")
                    .help("remove one of the assignments"),
            );
        }
        progress.set.insert(index, name.span);
        progress.assigned.insert(index, name.span);
        self.expect(value, &field.ty, &cx.inner);
    }

    /// `pool "name" { … }`: one element of a list of records, each label unique.
    fn repeated_block(
        &mut self,
        cx: &BlockContext,
        progress: &mut BlockProgress,
        name: &Ident,
        block_label: Option<&PlainString>,
        body: &'p Block,
    ) {
        let file = cx.outer.file;
        let Some((index, field)) = cx.record.block_field(&name.name) else {
            return;
        };
        self.resolve(
            file,
            name.span,
            Resolution::FieldEntry {
                record: cx.rid,
                field: index,
            },
        );
        let Ty::List(elem) = &field.ty else { return };
        let Ty::Record(elem) = **elem else { return };
        let elem_def = self.decls.records[elem.0 as usize].clone();
        let header = block_label.map_or(name.span, |l| l.span);
        match (elem_def.label_field(), block_label) {
            (Some(_), None) => self.error(
                Diagnostic::error(Code::E0207, format!("`{}` blocks need a label", name.name))
                    .at(file, name.span, "label missing")
                    .help(format!("write `{} \"NAME\" {{ … }}`", name.name)),
            ),
            (None, Some(l)) => {
                self.error(
                    Diagnostic::error(Code::E0207, format!("`{}` blocks take no label", name.name))
                        .at(file, l.span, "remove this label"),
                )
            }
            (Some(_), Some(l)) => {
                if let Some(first) = progress.labels_seen.get(&(index, l.value.clone())) {
                    let what = name.name.replace('_', " ");
                    self.error(
                        Diagnostic::error(
                            Code::E0107,
                            format!("{what} `{}` is declared twice", l.value),
                        )
                        .at(file, l.span, "second declaration")
                        .also(file, *first, "first declared here")
                        .help(format!(
                            "{what} names must be unique within a {}",
                            cx.record.name.to_lowercase()
                        )),
                    );
                } else {
                    progress
                        .labels_seen
                        .insert((index, l.value.clone()), l.span);
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
        self.check_block(&body.entries, elem, &cx.inner, label, header);
        progress.set.insert_first(index, name.span);
    }

    /// `name { … }`: a field whose type is a record, written as a block without a label.
    fn nested_block(
        &mut self,
        cx: &BlockContext,
        progress: &mut BlockProgress,
        name: &Ident,
        block_label: Option<&PlainString>,
        body: &'p Block,
    ) {
        let file = cx.outer.file;
        let Some((index, field)) = cx.record.field(&name.name) else {
            self.unknown_field(&cx.record, name, file, true);
            return;
        };
        let Ty::Record(elem) = field.ty.required().clone() else {
            self.error(
                Diagnostic::error(Code::E0206, format!("`{}` is not a block", name.name))
                    .at(
                        file,
                        name.span,
                        format!("`{}` has type {}", name.name, self.show(&field.ty)),
                    )
                    .help(match &field.block_name {
                        Some(block) => format!(
                            "write one `{block} {{ … }}` block per item, or `{} = [ … ]`",
                            name.name
                        ),
                        None => format!("write `{} = …`", name.name),
                    }),
            );
            return;
        };
        self.resolve(
            file,
            name.span,
            Resolution::FieldEntry {
                record: cx.rid,
                field: index,
            },
        );
        if let Some(first) = progress.set.get(index) {
            self.error(
                Diagnostic::error(Code::E0108, format!("field `{}` is set twice", field.name))
                    .at(file, name.span, "set again here")
                    .also(file, first, "first set here"),
            );
        }
        progress.set.insert(index, name.span);
        if let Some(l) = block_label {
            self.error(
                Diagnostic::error(Code::E0207, format!("`{}` blocks take no label", name.name)).at(
                    file,
                    l.span,
                    "remove this label",
                ),
            );
        }
        self.check_block(&body.entries, elem, &cx.inner, None, name.span);
    }

    /// `...expr`: a whole record of the block's type, or a list for a repeated-block field.
    fn spread_entry(&mut self, cx: &BlockContext, progress: &mut BlockProgress, expr: &'p Expr) {
        let file = cx.outer.file;
        let record = &cx.record;
        let ty = self.infer(expr, None, cx.outer);
        match &ty {
            Ty::Error => progress.complete_spread = true,
            Ty::Record(r) if *r == cx.rid => progress.complete_spread = true,
            Ty::List(elem) => {
                let target = match &**elem {
                    Ty::Record(e) => record.fields.iter().position(|f| {
                        f.block_name.is_some() && f.ty == Ty::List(Box::new(Ty::Record(*e)))
                    }),
                    _ => None,
                };
                match target {
                    Some(index) => {
                        progress.set.insert_first(index, expr.span);
                    }
                    None if **elem == Ty::Error => {}
                    None => self.error(self.bad_spread(record, &ty, file, expr.span)),
                }
            }
            _ => self.error(self.bad_spread(record, &ty, file, expr.span)),
        }
    }

    /// Required fields (no default) that no entry, label or spread set.
    fn missing_fields(&mut self, cx: &BlockContext, progress: &BlockProgress, header: Span) {
        let record = &cx.record;
        for (index, field) in record.fields.iter().enumerate() {
            if !field.is_required()
                || progress.set.get(index).is_some()
                || progress.misspelt.contains(&field.name)
            {
                continue;
            }
            let what = match cx.label {
                Some(l) => format!("{} `{}`", record.name, l.value),
                None => record.name.clone(),
            };
            let d = Diagnostic::error(
                Code::E0203,
                format!("missing field `{}` in {what}", field.name),
            )
            .at(
                cx.outer.file,
                header,
                format!("`{}` is not set", field.name),
            )
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

    fn bad_spread(&self, record: &RecordDef, ty: &Ty, file: FileId, span: Span) -> Diagnostic {
        Diagnostic::error(
            Code::E0212,
            format!("cannot spread {} into a {}", self.show(ty), record.name),
        )
        .at(file, span, format!("this is {}", self.show(ty)))
        .help(format!(
            "spread a `{}` record, or a list of records that this block takes as repeated blocks",
            record.name
        ))
    }

    /// Report an unknown field; returns the field it probably meant.
    pub(super) fn unknown_field(
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
            Code::E0201,
            format!("unknown {kind} `{}` in `{}`", name.name, record.name),
        );
        let blockish = record.block_field(&name.name).is_some();
        let meant = suggest(&name.name, names.iter().copied()).map(str::to_string);
        let (label, help) = if blockish && !as_block {
            (
                "this is a block".to_string(),
                format!("write `{} \"NAME\" {{ … }}`", name.name),
            )
        } else if let Some(hint) = did_you_mean(&name.name, names.iter().copied()) {
            (hint, String::new())
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
}

/// The block being checked: its record type and the scopes its entries are read in.
struct BlockContext<'s> {
    rid: RecordId,
    record: Arc<RecordDef>,
    /// Where the block is written (spreads are read here).
    outer: &'s Scope,
    /// `outer` with the record's fields visible (field values are read here).
    inner: Scope,
    label: Option<&'s PlainString>,
}

/// What a block's entries have set so far.
struct BlockProgress {
    /// Fields set by an entry, the label or a spread, with where.
    set: FieldSpans,
    /// Fields given with `name = …` (a subset of `set`).
    assigned: FieldSpans,
    /// A spread of a whole record (or of an erroneous value) sets every field.
    complete_spread: bool,
    /// Labels of repeated blocks, by field, with where they were first written.
    labels_seen: HashMap<(usize, String), Span>,
    /// Fields a misspelling probably meant: not reported again as missing.
    misspelt: Vec<String>,
}

impl BlockProgress {
    fn new(fields: usize) -> Self {
        BlockProgress {
            set: FieldSpans(vec![None; fields]),
            assigned: FieldSpans(vec![None; fields]),
            complete_spread: false,
            labels_seen: HashMap::new(),
            misspelt: Vec::new(),
        }
    }
}

/// A span for some of a record's fields, by field index. Every block is checked with
/// two of these, so they are a vector the size of the record rather than hash maps,
/// which cost an allocation and a hash per entry (a tenth of the checker's time).
struct FieldSpans(Vec<Option<Span>>);

impl FieldSpans {
    fn get(&self, index: usize) -> Option<Span> {
        self.0.get(index).copied().flatten()
    }

    fn insert(&mut self, index: usize, span: Span) {
        if let Some(slot) = self.0.get_mut(index) {
            *slot = Some(span);
        }
    }

    /// Keeps the span already there, if any.
    fn insert_first(&mut self, index: usize, span: Span) {
        if let Some(slot @ None) = self.0.get_mut(index) {
            *slot = Some(span);
        }
    }
}
