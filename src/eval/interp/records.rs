//! Descriptions and instances: placing entries, lazy fields, checks, conversion to data.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::{
    Description, Env, Evaluator, FrameKind, Instance, Item, Item_, Layer, PendingBlock, Result,
    Slot, State, Text, Value, internal, item,
};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::eval::data::{Data, Record};
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::*;
use crate::types::{RecordId, Resolution, Ty};

impl<'p> Evaluator<'p> {
    /// Turn block entries into a description. Spreads are applied first, so entries
    /// written in the block win over spread ones wherever they appear. The items of a
    /// repeated-block field (`node_pool "…" { … }`) come from blocks, spread lists and
    /// an assigned list (`node_pools = [ … ]`), in source order.
    pub(super) fn describe(
        &self,
        rid: RecordId,
        entries: &'p [Entry],
        env: &Env<'p>,
        label: Option<&'p str>,
        origin: (FileId, Span),
    ) -> Result<Rc<Description<'p>>> {
        let def = self.checked.decls.record(rid);
        let mut slots: Vec<Option<Slot<'p>>> = vec![None; def.fields.len()];
        let mut entry_spans = vec![None; def.fields.len()];
        let mut label = label;
        // Items of repeated blocks with the position of the entry that gave them, so
        // spread lists and blocks keep their source order.
        let mut items: BTreeMap<usize, Vec<(usize, Item<'p>)>> = BTreeMap::new();
        for (position, entry) in entries.iter().enumerate() {
            let Entry::Spread { expr, .. } = entry else {
                continue;
            };
            match self.eval(expr, env, None)? {
                Value::Record(other) if other.ty == rid => {
                    for (i, slot) in other.slots.iter().enumerate() {
                        match slot {
                            Some(Slot::Items(list)) => {
                                let list = list.iter().map(|item| (position, item.clone()));
                                items.insert(i, list.collect());
                            }
                            Some(_) => slots[i] = slot.clone(),
                            None => continue,
                        }
                        entry_spans[i] = other.entry_spans[i];
                    }
                    if label.is_none() {
                        label = other.label;
                    }
                }
                Value::List(list) => {
                    let Some(index) = list.first().and_then(|first| {
                        let Value::Record(d) = first else { return None };
                        def.fields.iter().position(|f| {
                            f.block_name.is_some()
                                && matches!(&f.ty, Ty::List(elem) if **elem == Ty::Record(d.ty))
                        })
                    }) else {
                        continue;
                    };
                    let built = list
                        .iter()
                        .map(|value| (position, Item::Built(value.clone())));
                    items.entry(index).or_default().extend(built);
                }
                _ => {}
            }
        }
        for (position, entry) in entries.iter().enumerate() {
            match entry {
                Entry::Field { name, value, span } => {
                    if let Some(Resolution::FieldEntry { field, .. }) =
                        self.resolution(env.file, name.span)
                    {
                        if def.fields[*field].block_name.is_some() {
                            let assigned = (position, Item::Expr(value, env.clone()));
                            items.entry(*field).or_default().push(assigned);
                        } else {
                            slots[*field] = Some(Slot::Expr(value, env.clone()));
                        }
                        entry_spans[*field] = Some(*span);
                    }
                }
                Entry::Block {
                    name,
                    label: block_label,
                    body,
                    span,
                } => {
                    let Some(Resolution::FieldEntry { field, .. }) =
                        self.resolution(env.file, name.span)
                    else {
                        continue;
                    };
                    let pending = PendingBlock {
                        entries: &body.entries,
                        label: block_label.as_ref().map(|l| l.value.as_str()),
                        origin: (env.file, block_label.as_ref().map_or(name.span, |l| l.span)),
                        env: env.clone(),
                    };
                    entry_spans[*field] = Some(*span);
                    if def.fields[*field].block_name.is_some() {
                        let block = (position, Item::Block(pending));
                        items.entry(*field).or_default().push(block);
                    } else {
                        let layers = match slots[*field].take() {
                            Some(Slot::Layers(mut layers)) => {
                                layers.push(Layer::Block(pending));
                                layers
                            }
                            Some(Slot::Expr(expr, env)) => {
                                vec![Layer::Expr(expr, env), Layer::Block(pending)]
                            }
                            _ => vec![Layer::Block(pending)],
                        };
                        slots[*field] = Some(Slot::Layers(layers));
                    }
                }
                Entry::Spread { .. } => {}
            }
        }
        for (field, mut list) in items {
            list.sort_by_key(|(position, _)| *position);
            let list = list.into_iter().map(|(_, item)| item).collect();
            slots[field] = Some(Slot::Items(list));
        }
        Ok(Rc::new(Description {
            ty: rid,
            slots,
            label,
            origin,
            entry_spans,
        }))
    }

    /// The value of one field of an instance, evaluating it on first use.
    pub(super) fn force(&self, instance: &Rc<Instance<'p>>, field: usize) -> Result<Value<'p>> {
        let state = instance.state.borrow()[field].clone();
        match state {
            State::Done(v) => return Ok(v),
            State::InProgress => {
                let def = self.checked.decls.record(instance.desc.ty);
                let (file, span) = instance.desc.origin;
                let span = instance.desc.entry_spans[field].unwrap_or(span);
                return Err(Diagnostic::error(
                    Code::E0305,
                    format!("field `{}` of {} depends on itself", def.fields[field].name, def.name),
                )
                .at(file, span, "part of a cycle")
                .help("break the cycle by setting one of the fields to a value that does not refer back"));
            }
            State::Pending => {}
        }
        instance.state.borrow_mut()[field] = State::InProgress;
        let result = self.compute_field(instance, field);
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                instance.state.borrow_mut()[field] = State::Pending;
                return Err(e);
            }
        };
        instance.state.borrow_mut()[field] = State::Done(value.clone());
        Ok(value)
    }

    fn compute_field(&self, instance: &Rc<Instance<'p>>, field: usize) -> Result<Value<'p>> {
        let decls = &self.checked.decls;
        let def = decls.record(instance.desc.ty);
        let fdef = &def.fields[field];
        let cluster = instance.cluster_context();
        let ty = &fdef.ty;
        if fdef.is_label
            && let Some(label) = &instance.desc.label
        {
            return Ok(Value::Str(Text::Tree(label)));
        }
        let own = |env: &Env<'p>| env.push(FrameKind::Instance(instance.clone()));
        let value = match &instance.desc.slots[field] {
            Some(Slot::Expr(expr, env)) => self.eval(expr, &own(env), cluster.as_ref())?,
            Some(Slot::Layers(layers)) => {
                let Ty::Record(rid) = ty.required() else {
                    return Ok(Value::Null);
                };
                let mut merged: Option<Rc<Description<'p>>> = None;
                for layer in layers {
                    let desc = match layer {
                        Layer::Block(p) => {
                            self.describe(*rid, p.entries, &own(&p.env), p.label, p.origin)?
                        }
                        Layer::Expr(expr, env) => {
                            match self.eval(expr, &own(env), cluster.as_ref())? {
                                Value::Record(d) => d,
                                other => return Ok(coerce(other, ty)),
                            }
                        }
                    };
                    merged = Some(match merged {
                        Some(base) => overlay(&base, &desc),
                        None => desc,
                    });
                }
                merged.map_or(Value::Null, Value::Record)
            }
            Some(Slot::Items(items)) => {
                let Ty::List(elem) = ty else {
                    return Ok(Value::Null);
                };
                let Ty::Record(rid) = **elem else {
                    return Ok(Value::Null);
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(match item {
                        Item::Built(v) => v.clone(),
                        Item::Block(p) => Value::Record(self.describe(
                            rid,
                            p.entries,
                            &own(&p.env),
                            p.label,
                            p.origin,
                        )?),
                        Item::Expr(expr, env) => {
                            match self.eval(expr, &own(env), cluster.as_ref())? {
                                Value::List(list) => {
                                    out.extend(list.iter().cloned());
                                    continue;
                                }
                                _ => return Err(internal(env.file, expr.span)),
                            }
                        }
                    });
                }
                Value::List(Rc::new(out))
            }
            None => {
                let Item_::Type(decl) = item(self.program, def.site.module, def.site.item) else {
                    return Ok(Value::Null);
                };
                match &decl.members[fdef.member] {
                    Member::Field(FieldDecl {
                        default: Some(default),
                        ..
                    }) => {
                        let env = self
                            .module_env(def.site.module)
                            .push(FrameKind::Instance(instance.clone()));
                        self.eval(default, &env, cluster.as_ref())?
                    }
                    _ => Value::Null,
                }
            }
        };
        Ok(coerce(value, ty))
    }

    /// Evaluate every field (recursively) and run the type's checks.
    pub(super) fn materialize(&self, instance: &Rc<Instance<'p>>) -> Result<Data> {
        let decls = &self.checked.decls;
        let def = decls.record(instance.desc.ty);
        let mut fields = Vec::with_capacity(def.fields.len());
        let cluster = instance
            .cluster_context()
            .or_else(|| (Some(instance.desc.ty) == decls.cluster_type).then(|| instance.clone()));
        for (i, f) in def.fields.iter().enumerate() {
            let value = self.force(instance, i)?;
            fields.push((f.name.clone(), self.to_data(&value, cluster.as_ref())?));
        }
        self.run_checks(instance)?;
        Ok(Data::Record(Record {
            type_name: def.name.clone(),
            fields,
        }))
    }

    fn run_checks(&self, instance: &Rc<Instance<'p>>) -> Result<()> {
        let def = self.checked.decls.record(instance.desc.ty);
        let Item_::Type(decl) = item(self.program, def.site.module, def.site.item) else {
            return Ok(());
        };
        let env = self
            .module_env(def.site.module)
            .push(FrameKind::Instance(instance.clone()));
        let cluster = instance.cluster_context();
        for &member in &def.checks {
            let Member::Check(check) = &decl.members[member] else {
                continue;
            };
            let ok = self.eval(&check.condition, &env, cluster.as_ref())?;
            if matches!(ok, Value::Bool(true)) {
                continue;
            }
            let message = match self.eval(&check.message, &env, cluster.as_ref())? {
                Value::Str(s) => s.to_string(),
                _ => "check failed".to_string(),
            };
            let (file, header) = instance.desc.origin;
            let mut referenced = Vec::new();
            self.fields_referenced(&check.condition, env.file, &mut referenced);
            let primary = referenced
                .iter()
                .find_map(|f| instance.desc.entry_spans[*f])
                .unwrap_or(header);
            let what = match &instance.desc.label {
                Some(l) => format!("{} `{l}`", def.name),
                None => def.name.clone(),
            };
            return Err(Diagnostic::error(Code::E0302, format!("{what}: {message}"))
                .at(file, primary, "check failed for this value")
                .also(
                    def.site.file,
                    check.condition.span,
                    format!("check declared in `{}`", def.name),
                ));
        }
        Ok(())
    }

    /// Fields of the record itself that an expression reads (to point check failures at them).
    fn fields_referenced(&self, expr: &'p Expr, file: FileId, out: &mut Vec<usize>) {
        if let ExprKind::Name(ident) = &expr.kind
            && let Some(Resolution::Field {
                depth: 0, field, ..
            }) = self.resolution(file, ident.span)
        {
            out.push(*field);
        }
        visit_children(expr, &mut |child| self.fields_referenced(child, file, out));
    }

    fn to_data(&self, value: &Value<'p>, cluster: Option<&Rc<Instance<'p>>>) -> Result<Data> {
        Ok(match value {
            Value::Null => Data::Null,
            Value::Bool(b) => Data::Bool(*b),
            Value::Int(n) => Data::Int(*n),
            Value::Float(x) => Data::Float(*x),
            Value::Str(s) => Data::String(s.to_string()),
            Value::Duration(ms) => Data::Duration(*ms),
            Value::Quantity(q) => Data::Quantity(q.clone()),
            Value::Secret(s) => Data::Secret((**s).clone()),
            Value::Enum(e, i) => {
                Data::Enum(self.checked.decls.enum_def(*e).variants[*i].name.clone())
            }
            Value::List(items) => Data::List(
                items
                    .iter()
                    .map(|v| self.to_data(v, cluster))
                    .collect::<Result<_>>()?,
            ),
            Value::Map(m) => Data::Map(
                m.iter()
                    .map(|(k, v)| Ok((k.to_string(), self.to_data(v, cluster)?)))
                    .collect::<Result<_>>()?,
            ),
            Value::Record(desc) => {
                // Channels are context-free; every other record belongs to the cluster.
                let context = if Some(desc.ty) == self.checked.decls.channel_type {
                    None
                } else {
                    cluster.cloned()
                };
                let instance = self.place(desc.clone(), context);
                self.materialize(&instance)?
            }
            Value::Instance(instance) => self.materialize(instance)?,
        })
    }
}

/// `top` written over `base`: fields `top` sets win; nested blocks merge; repeated
/// blocks accumulate.
fn overlay<'p>(base: &Description<'p>, top: &Description<'p>) -> Rc<Description<'p>> {
    let slots = base
        .slots
        .iter()
        .zip(&top.slots)
        .map(|(b, t)| match (b, t) {
            (Some(Slot::Layers(below)), Some(Slot::Layers(above))) => {
                Some(Slot::Layers(below.iter().chain(above).cloned().collect()))
            }
            (Some(Slot::Expr(expr, env)), Some(Slot::Layers(above))) => Some(Slot::Layers(
                std::iter::once(Layer::Expr(expr, env.clone()))
                    .chain(above.iter().cloned())
                    .collect(),
            )),
            (Some(Slot::Items(below)), Some(Slot::Items(above))) => {
                Some(Slot::Items(below.iter().chain(above).cloned().collect()))
            }
            (b, None) => b.clone(),
            (_, t) => t.clone(),
        })
        .collect();
    let entry_spans = base
        .entry_spans
        .iter()
        .zip(&top.entry_spans)
        .map(|(b, t)| t.or(*b))
        .collect();
    Rc::new(Description {
        ty: top.ty,
        slots,
        label: top.label.or(base.label),
        origin: top.origin,
        entry_spans,
    })
}

/// Int values stored in Float fields become floats.
fn coerce<'p>(value: Value<'p>, ty: &Ty) -> Value<'p> {
    match (value, ty.required()) {
        (Value::Int(n), Ty::Float) => Value::Float(n as f64),
        (v, _) => v,
    }
}

/// Call `f` on each direct sub-expression.
fn visit_children<'p>(expr: &'p Expr, f: &mut dyn FnMut(&'p Expr)) {
    match &expr.kind {
        ExprKind::Str(parts) => {
            for p in parts {
                if let StrPart::Interpolation(e) = p {
                    f(e);
                }
            }
        }
        ExprKind::List(items) => items.iter().for_each(f),
        ExprKind::Map(entries) => entries.iter().for_each(|(_, v)| f(v)),
        ExprKind::Field(b, _) => f(b),
        ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => {
            f(a);
            f(b);
        }
        ExprKind::Call(_, args) => args.iter().for_each(f),
        ExprKind::Unary(_, e) | ExprKind::Paren(e) => f(e),
        ExprKind::If(a, b, c) => {
            f(a);
            f(b);
            f(c);
        }
        ExprKind::Comprehension {
            body, iter, filter, ..
        } => {
            f(iter);
            if let Some(x) = filter {
                f(x);
            }
            f(body);
        }
        _ => {}
    }
}
