//! The evaluator. Record literals and blocks evaluate to *descriptions* (their
//! entries, unevaluated, with the environment they were written in). A description
//! becomes an *instance* when it takes its place in a cluster; the instance evaluates
//! fields lazily, fills defaults in the context of that cluster, and detects cycles.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use base64::Engine as _;
use sha2::Digest;

use super::data::{Data, Quantity, Record, SecretValue};
use crate::diagnostic::Diagnostic;
use crate::resolve::{ModuleId, Program};
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::*;
use crate::types::{Builtin, ChannelId, Checked, EnumId, RecordId, Resolution, Ty};
use crate::units::format_duration;

pub(super) type Result<T> = std::result::Result<T, Diagnostic>;

#[derive(Clone)]
pub(super) enum Value<'p> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Duration(i64),
    Quantity(Quantity),
    Secret(Rc<SecretValue>),
    Enum(EnumId, usize),
    List(Rc<Vec<Value<'p>>>),
    Map(Rc<BTreeMap<String, Value<'p>>>),
    Record(Rc<Description<'p>>),
    Instance(Rc<Instance<'p>>),
}

/// What a record literal or block says, before it is placed.
pub(super) struct Description<'p> {
    ty: RecordId,
    slots: Vec<Option<Slot<'p>>>,
    label: Option<String>,
    /// Where the record was written (the block header), for check failures.
    origin: (FileId, Span),
    /// Span of each explicitly set entry, for check failures.
    entry_spans: Vec<Option<Span>>,
}

#[derive(Clone)]
enum Slot<'p> {
    Expr(&'p Expr, Env<'p>),
    /// A nested record written as `name { … }` blocks, on top of what a spread gave:
    /// the layers are merged field by field, later ones winning, so `update { … }`
    /// adjusts a spread pool's update strategy instead of replacing it.
    Layers(Vec<Layer<'p>>),
    /// Repeated blocks and spread lists for an `@block` field.
    Items(Vec<Item<'p>>),
}

#[derive(Clone)]
enum Layer<'p> {
    Expr(&'p Expr, Env<'p>),
    /// Built when the owning instance exists.
    Block(PendingBlock<'p>),
}

#[derive(Clone)]
struct PendingBlock<'p> {
    entries: &'p [Entry],
    label: Option<String>,
    origin: (FileId, Span),
    env: Env<'p>,
}

#[derive(Clone)]
enum Item<'p> {
    Built(Value<'p>),
    Block(PendingBlock<'p>),
    /// An assigned list (`node_pools = [ … ]`), evaluated with the owning instance.
    Expr(&'p Expr, Env<'p>),
}

/// A description placed in a cluster: fields are evaluated once, on demand.
pub(super) struct Instance<'p> {
    desc: Rc<Description<'p>>,
    /// The cluster this record belongs to (`None` for the cluster itself and channels).
    cluster: Option<Rc<Instance<'p>>>,
    state: RefCell<Vec<State<'p>>>,
}

#[derive(Clone)]
enum State<'p> {
    Pending,
    InProgress,
    Done(Value<'p>),
}

/// The lexical environment of an expression.
#[derive(Clone)]
pub(super) struct Env<'p> {
    module: ModuleId,
    file: FileId,
    frames: Option<Rc<Frame<'p>>>,
}

enum FrameKind<'p> {
    Instance(Rc<Instance<'p>>),
    Local(String, Value<'p>),
}

struct Frame<'p> {
    kind: FrameKind<'p>,
    parent: Option<Rc<Frame<'p>>>,
}

impl<'p> Env<'p> {
    fn push(&self, kind: FrameKind<'p>) -> Env<'p> {
        Env {
            module: self.module,
            file: self.file,
            frames: Some(Rc::new(Frame {
                kind,
                parent: self.frames.clone(),
            })),
        }
    }

    fn instance_at(&self, depth: usize) -> Option<Rc<Instance<'p>>> {
        let mut seen = 0;
        let mut frame = self.frames.as_ref();
        while let Some(f) = frame {
            if let FrameKind::Instance(i) = &f.kind {
                if seen == depth {
                    return Some(i.clone());
                }
                seen += 1;
            }
            frame = f.parent.as_ref();
        }
        None
    }

    fn local(&self, name: &str) -> Option<Value<'p>> {
        let mut frame = self.frames.as_ref();
        while let Some(f) = frame {
            if let FrameKind::Local(n, v) = &f.kind
                && n == name
            {
                return Some(v.clone());
            }
            frame = f.parent.as_ref();
        }
        None
    }
}

type LetSlot<'p> = Option<Result<Value<'p>>>;

pub(super) struct Evaluator<'p> {
    pub program: &'p Program,
    pub checked: &'p Checked,
    /// Let values by (module, item); `None` while one is being evaluated (cycle check).
    lets: RefCell<HashMap<(ModuleId, usize), LetSlot<'p>>>,
    channels: RefCell<HashMap<ChannelId, Rc<Description<'p>>>>,
}

impl<'p> Evaluator<'p> {
    pub fn new(program: &'p Program, checked: &'p Checked) -> Evaluator<'p> {
        Evaluator {
            program,
            checked,
            lets: RefCell::new(HashMap::new()),
            channels: RefCell::new(HashMap::new()),
        }
    }

    fn module_env(&self, module: ModuleId) -> Env<'p> {
        Env {
            module,
            file: self.program.module(module).file,
            frames: None,
        }
    }

    fn resolution(&self, file: FileId, span: Span) -> Option<&'p Resolution> {
        self.checked.resolution(file, span)
    }

    // ---- entry points ----------------------------------------------------------

    /// Evaluate one top-level cluster declaration to data.
    pub fn cluster(&self, module: ModuleId, decl: &'p ClusterDecl) -> Result<Data> {
        let rid =
            self.checked.decls.cluster_type.ok_or_else(|| {
                Diagnostic::error("E0300", "the prelude declares no `Cluster` type")
            })?;
        let env = self.module_env(module);
        let desc = self.describe(
            rid,
            &decl.body.entries,
            &env,
            Some(decl.id.value.clone()),
            (env.file, decl.id.span),
        )?;
        let instance = Rc::new(Instance::new(desc, None));
        self.materialize(&instance)
    }

    pub fn channel(&self, id: ChannelId) -> Result<Data> {
        let desc = self.channel_description(id)?;
        let instance = Rc::new(Instance::new(desc, None));
        self.materialize(&instance)
    }

    fn channel_description(&self, id: ChannelId) -> Result<Rc<Description<'p>>> {
        if let Some(d) = self.channels.borrow().get(&id) {
            return Ok(d.clone());
        }
        let def = self.checked.decls.channel(id);
        let Item_::Channel(decl) = item(self.program, def.site.module, def.site.item) else {
            return Err(Diagnostic::error("E0300", "channel declaration not found"));
        };
        let rid =
            self.checked.decls.channel_type.ok_or_else(|| {
                Diagnostic::error("E0300", "the prelude declares no `Channel` type")
            })?;
        let env = self.module_env(def.site.module);
        let desc = self.describe(
            rid,
            &decl.body.entries,
            &env,
            Some(def.name.clone()),
            (env.file, decl.name.span),
        )?;
        self.channels.borrow_mut().insert(id, desc.clone());
        Ok(desc)
    }

    // ---- records ---------------------------------------------------------------

    /// Turn block entries into a description. Spreads are applied first, so entries
    /// written in the block win over spread ones wherever they appear. The items of a
    /// repeated-block field (`node_pool "…" { … }`) come from blocks, spread lists and
    /// an assigned list (`node_pools = [ … ]`), in source order.
    fn describe(
        &self,
        rid: RecordId,
        entries: &'p [Entry],
        env: &Env<'p>,
        label: Option<String>,
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
                        label = other.label.clone();
                    }
                }
                Value::List(list) => {
                    let Some(index) = list.first().and_then(|first| {
                        let Value::Record(d) = first else { return None };
                        def.fields.iter().position(|f| {
                            f.block_name.is_some() && f.ty == Ty::List(Box::new(Ty::Record(d.ty)))
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
                        label: block_label.as_ref().map(|l| l.value.clone()),
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
    fn force(&self, instance: &Rc<Instance<'p>>, field: usize) -> Result<Value<'p>> {
        let state = instance.state.borrow()[field].clone();
        match state {
            State::Done(v) => return Ok(v),
            State::InProgress => {
                let def = self.checked.decls.record(instance.desc.ty);
                let (file, span) = instance.desc.origin;
                let span = instance.desc.entry_spans[field].unwrap_or(span);
                return Err(Diagnostic::error(
                    "E0305",
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
        let ty = fdef.ty.clone();
        if fdef.is_label
            && let Some(label) = &instance.desc.label
        {
            return Ok(Value::Str(label.as_str().into()));
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
                            self.describe(*rid, p.entries, &own(&p.env), p.label.clone(), p.origin)?
                        }
                        Layer::Expr(expr, env) => {
                            match self.eval(expr, &own(env), cluster.as_ref())? {
                                Value::Record(d) => d,
                                other => return Ok(coerce(other, &ty)),
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
                let Ty::List(elem) = &ty else {
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
                            p.label.clone(),
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
        Ok(coerce(value, &ty))
    }

    /// Evaluate every field (recursively) and run the type's checks.
    fn materialize(&self, instance: &Rc<Instance<'p>>) -> Result<Data> {
        let decls = &self.checked.decls;
        let def = decls.record(instance.desc.ty);
        let mut fields = Vec::with_capacity(def.fields.len());
        for (i, f) in def.fields.iter().enumerate() {
            let value = self.force(instance, i)?;
            let cluster = instance.cluster_context().or_else(|| {
                (Some(instance.desc.ty) == decls.cluster_type).then(|| instance.clone())
            });
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
            return Err(Diagnostic::error("E0302", format!("{what}: {message}"))
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
                    .map(|(k, v)| Ok((k.clone(), self.to_data(v, cluster)?)))
                    .collect::<Result<_>>()?,
            ),
            Value::Record(desc) => {
                // Channels are context-free; every other record belongs to the cluster.
                let context = if Some(desc.ty) == self.checked.decls.channel_type {
                    None
                } else {
                    cluster.cloned()
                };
                let instance = Rc::new(Instance::new(desc.clone(), context));
                self.materialize(&instance)?
            }
            Value::Instance(instance) => self.materialize(instance)?,
        })
    }

    // ---- expressions -----------------------------------------------------------

    pub(super) fn eval(
        &self,
        expr: &'p Expr,
        env: &Env<'p>,
        cluster: Option<&Rc<Instance<'p>>>,
    ) -> Result<Value<'p>> {
        let file = env.file;
        let resolution = || self.resolution(file, expr.span);
        Ok(match &expr.kind {
            ExprKind::Int(n) => match resolution() {
                Some(Resolution::IntAsFloat) => Value::Float(*n as f64),
                _ => Value::Int(*n),
            },
            ExprKind::Float(x) => Value::Float(*x),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::Null => Value::Null,
            ExprKind::Str(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        StrPart::Text(t) => out.push_str(t),
                        StrPart::Interpolation(e) => {
                            let v = self.eval(e, env, cluster)?;
                            out.push_str(&self.to_text(&v));
                        }
                    }
                }
                Value::Str(out.into())
            }
            ExprKind::UnitNumber { number, unit } => match resolution() {
                Some(Resolution::Quantity) => match Quantity::parse(number, unit) {
                    Some(q) => Value::Quantity(q),
                    None => {
                        return Err(Diagnostic::error(
                            "E0007",
                            format!("invalid quantity `{number}{unit}`"),
                        )
                        .at(file, expr.span, "not exact in milli-units, or too large")
                        .help("write e.g. `250m`, `500Mi`, `1.5Gi`"));
                    }
                },
                _ => match crate::units::parse_duration_ms(number, unit) {
                    Some(ms) => Value::Duration(ms),
                    None => {
                        return Err(Diagnostic::error(
                            "E0007",
                            format!("invalid duration `{number}{unit}`"),
                        )
                        .at(
                            file,
                            expr.span,
                            "not a whole number of milliseconds, or too large",
                        ));
                    }
                },
            },
            ExprKind::List(items) => Value::List(Rc::new(
                items
                    .iter()
                    .map(|i| self.eval(i, env, cluster))
                    .collect::<Result<_>>()?,
            )),
            ExprKind::Map(entries) => {
                if let Some(Resolution::Record(rid)) = resolution() {
                    return Ok(Value::Record(self.describe(
                        *rid,
                        &[],
                        env,
                        None,
                        (file, expr.span),
                    )?));
                }
                let mut map = BTreeMap::new();
                for (k, v) in entries {
                    map.insert(k.value.clone(), self.eval(v, env, cluster)?);
                }
                Value::Map(Rc::new(map))
            }
            ExprKind::Record { ty, body } => {
                let Some(Resolution::Record(rid)) = resolution() else {
                    return Err(internal(file, expr.span));
                };
                let origin = ty.as_ref().map_or(expr.span, |t| t.span);
                Value::Record(self.describe(*rid, &body.entries, env, None, (file, origin))?)
            }
            ExprKind::Name(ident) => self.name(ident, env, cluster)?,
            ExprKind::Field(base, name) => match resolution() {
                Some(Resolution::Variant(e, i)) => Value::Enum(*e, *i),
                Some(Resolution::Let(m, i)) => self.let_value(*m, *i)?,
                Some(Resolution::Channel(c)) => Value::Record(self.channel_description(*c)?),
                _ => {
                    let base_value = self.eval(base, env, cluster)?;
                    self.field_of(&base_value, &name.name, cluster, file, expr.span)?
                }
            },
            ExprKind::Index(base, index) => {
                let b = self.eval(base, env, cluster)?;
                let i = self.eval(index, env, cluster)?;
                match (&b, &i) {
                    (Value::List(items), Value::Int(n)) => {
                        let idx = if *n < 0 { None } else { items.get(*n as usize) };
                        match idx {
                            Some(v) => v.clone(),
                            None => {
                                return Err(Diagnostic::error(
                                    "E0304",
                                    format!("index {n} is out of range"),
                                )
                                .at(
                                    file,
                                    index.span,
                                    format!("the list has {} elements", items.len()),
                                )
                                .help("indices start at 0"));
                            }
                        }
                    }
                    (Value::Map(m), Value::Str(k)) => match m.get(&**k) {
                        Some(v) => v.clone(),
                        None => {
                            return Err(Diagnostic::error(
                                "E0304",
                                format!("key `{k}` is not in the map"),
                            )
                            .at(file, index.span, "missing key")
                            .help("check with `contains(map, key)` first, or use a default"));
                        }
                    },
                    _ => return Err(internal(file, expr.span)),
                }
            }
            ExprKind::Call(name, args) => self.call(expr, name, args, env, cluster)?,
            ExprKind::Unary(op, operand) => {
                let v = self.eval(operand, env, cluster)?;
                match (op, v) {
                    (UnaryOp::Not, Value::Bool(b)) => Value::Bool(!b),
                    (UnaryOp::Neg, Value::Int(n)) => {
                        Value::Int(n.checked_neg().ok_or_else(|| overflow(file, expr.span))?)
                    }
                    (UnaryOp::Neg, Value::Float(x)) => Value::Float(-x),
                    (UnaryOp::Neg, Value::Duration(ms)) => Value::Duration(-ms),
                    (UnaryOp::Neg, Value::Quantity(q)) => Value::Quantity(Quantity {
                        milli: -q.milli,
                        suffix: q.suffix,
                    }),
                    _ => return Err(internal(file, expr.span)),
                }
            }
            ExprKind::Binary(op, lhs, rhs) => self.binary(expr, *op, lhs, rhs, env, cluster)?,
            ExprKind::If(c, t, e) => match self.eval(c, env, cluster)? {
                Value::Bool(true) => self.eval(t, env, cluster)?,
                _ => self.eval(e, env, cluster)?,
            },
            ExprKind::Comprehension {
                body,
                var,
                iter,
                filter,
            } => {
                let items: Vec<Value<'p>> = match self.eval(iter, env, cluster)? {
                    Value::List(items) => items.iter().cloned().collect(),
                    Value::Map(m) => m.keys().map(|k| Value::Str(k.as_str().into())).collect(),
                    _ => return Err(internal(file, iter.span)),
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let inner = env.push(FrameKind::Local(var.name.clone(), item));
                    if let Some(f) = filter
                        && !matches!(self.eval(f, &inner, cluster)?, Value::Bool(true))
                    {
                        continue;
                    }
                    out.push(self.eval(body, &inner, cluster)?);
                }
                Value::List(Rc::new(out))
            }
            ExprKind::Paren(inner) => self.eval(inner, env, cluster)?,
        })
    }

    fn name(
        &self,
        ident: &'p Ident,
        env: &Env<'p>,
        cluster: Option<&Rc<Instance<'p>>>,
    ) -> Result<Value<'p>> {
        let file = env.file;
        Ok(match self.resolution(file, ident.span) {
            Some(Resolution::Local) => env
                .local(&ident.name)
                .ok_or_else(|| internal(file, ident.span))?,
            Some(Resolution::Field { depth, field, .. }) => {
                let instance = env
                    .instance_at(*depth)
                    .ok_or_else(|| internal(file, ident.span))?;
                self.force(&instance, *field)?
            }
            Some(Resolution::ClusterContext) => match cluster {
                Some(c) => Value::Instance(c.clone()),
                None => {
                    return Err(Diagnostic::error("E0306", "`cluster` is used outside of a cluster")
                        .at(file, ident.span, "this default needs the enclosing cluster")
                        .help("records whose defaults read `cluster` get their values only inside a cluster block"));
                }
            },
            Some(Resolution::Let(m, i)) => self.let_value(*m, *i)?,
            Some(Resolution::Channel(c)) => Value::Record(self.channel_description(*c)?),
            Some(Resolution::Variant(e, i)) => Value::Enum(*e, *i),
            _ => return Err(internal(file, ident.span)),
        })
    }

    fn let_value(&self, module: ModuleId, index: usize) -> Result<Value<'p>> {
        if let Some(slot) = self.lets.borrow().get(&(module, index)) {
            return match slot {
                Some(result) => result.clone(),
                None => {
                    let Item_::Let(decl) = item(self.program, module, index) else {
                        return Err(Diagnostic::error("E0300", "let not found"));
                    };
                    Err(Diagnostic::error(
                        "E0305",
                        format!("`{}` is defined in terms of itself", decl.name.name),
                    )
                    .at(
                        self.program.module(module).file,
                        decl.name.span,
                        "cyclic definition",
                    ))
                }
            };
        }
        let Item_::Let(decl) = item(self.program, module, index) else {
            return Err(Diagnostic::error("E0300", "let not found"));
        };
        self.lets.borrow_mut().insert((module, index), None);
        let result = self.eval(&decl.value, &self.module_env(module), None);
        self.lets
            .borrow_mut()
            .insert((module, index), Some(result.clone()));
        result
    }

    fn field_of(
        &self,
        base: &Value<'p>,
        name: &str,
        cluster: Option<&Rc<Instance<'p>>>,
        file: FileId,
        span: Span,
    ) -> Result<Value<'p>> {
        let instance =
            match base {
                Value::Instance(i) => i.clone(),
                Value::Record(desc) => {
                    let context = if Some(desc.ty) == self.checked.decls.channel_type {
                        None
                    } else {
                        cluster.cloned()
                    };
                    Rc::new(Instance::new(desc.clone(), context))
                }
                Value::Null => {
                    return Err(Diagnostic::error(
                        "E0304",
                        format!("cannot read `{name}` of null"),
                    )
                    .at(file, span, "this value is null"));
                }
                _ => return Err(internal(file, span)),
            };
        let def = self.checked.decls.record(instance.desc.ty);
        let (index, _) = def.field(name).ok_or_else(|| internal(file, span))?;
        self.force(&instance, index)
    }

    fn to_text(&self, v: &Value<'p>) -> String {
        match v {
            Value::Str(s) => s.to_string(),
            Value::Int(n) => n.to_string(),
            Value::Float(x) => x.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Duration(ms) => format_duration(*ms),
            Value::Quantity(q) => q.to_string(),
            Value::Enum(e, i) => self.checked.decls.enum_def(*e).variants[*i].name.clone(),
            Value::Null => "null".into(),
            Value::Secret(s) => s.redacted(),
            Value::List(_) | Value::Map(_) | Value::Record(_) | Value::Instance(_) => "…".into(),
        }
    }

    fn binary(
        &self,
        expr: &'p Expr,
        op: BinaryOp,
        lhs: &'p Expr,
        rhs: &'p Expr,
        env: &Env<'p>,
        cluster: Option<&Rc<Instance<'p>>>,
    ) -> Result<Value<'p>> {
        let file = env.file;
        match op {
            BinaryOp::And => {
                return Ok(match self.eval(lhs, env, cluster)? {
                    Value::Bool(false) => Value::Bool(false),
                    _ => self.eval(rhs, env, cluster)?,
                });
            }
            BinaryOp::Or => {
                return Ok(match self.eval(lhs, env, cluster)? {
                    Value::Bool(true) => Value::Bool(true),
                    _ => self.eval(rhs, env, cluster)?,
                });
            }
            BinaryOp::Coalesce => {
                return Ok(match self.eval(lhs, env, cluster)? {
                    Value::Null => self.eval(rhs, env, cluster)?,
                    v => v,
                });
            }
            _ => {}
        }
        let l = self.eval(lhs, env, cluster)?;
        let r = self.eval(rhs, env, cluster)?;
        let (l, r) = match (l, r) {
            (Value::Int(a), Value::Float(b)) => (Value::Float(a as f64), Value::Float(b)),
            (Value::Float(a), Value::Int(b)) => (Value::Float(a), Value::Float(b as f64)),
            pair => pair,
        };
        let of = || overflow(file, expr.span);
        let zero = || {
            Diagnostic::error("E0301", "division by zero")
                .at(file, rhs.span, "this is zero")
                .help("guard the division: `if d == 0 then … else x / d`")
        };
        use BinaryOp::*;
        Ok(match (op, &l, &r) {
            (Eq, _, _) => Value::Bool(self.equal(&l, &r)),
            (Ne, _, _) => Value::Bool(!self.equal(&l, &r)),
            (Lt | Le | Gt | Ge, _, _) => {
                let ord = compare(&l, &r).ok_or_else(|| internal(file, expr.span))?;
                Value::Bool(match op {
                    Lt => ord.is_lt(),
                    Le => ord.is_le(),
                    Gt => ord.is_gt(),
                    _ => ord.is_ge(),
                })
            }
            (Add, Value::Int(a), Value::Int(b)) => Value::Int(a.checked_add(*b).ok_or_else(of)?),
            (Sub, Value::Int(a), Value::Int(b)) => Value::Int(a.checked_sub(*b).ok_or_else(of)?),
            (Mul, Value::Int(a), Value::Int(b)) => Value::Int(a.checked_mul(*b).ok_or_else(of)?),
            (Div, Value::Int(_), Value::Int(0)) | (Rem, Value::Int(_), Value::Int(0)) => {
                return Err(zero());
            }
            (Div, Value::Int(a), Value::Int(b)) => Value::Int(a.checked_div(*b).ok_or_else(of)?),
            (Rem, Value::Int(a), Value::Int(b)) => Value::Int(a.checked_rem(*b).ok_or_else(of)?),
            (Div, Value::Float(_), Value::Float(b)) if *b == 0.0 => return Err(zero()),
            (Add | Sub | Mul | Div, Value::Float(a), Value::Float(b)) => {
                let x = match op {
                    Add => a + b,
                    Sub => a - b,
                    Mul => a * b,
                    _ => a / b,
                };
                // Floats are finite: an infinite or NaN result is an overflow.
                if !x.is_finite() {
                    return Err(Diagnostic::error("E0303", "arithmetic overflow")
                        .at(file, expr.span, "the result is not a finite number")
                        .help("floats are 64-bit and must stay finite (at most about 1.8e308)"));
                }
                Value::Float(x)
            }
            (Add, Value::Str(a), Value::Str(b)) => Value::Str(format!("{a}{b}").into()),
            (Add, Value::Duration(a), Value::Duration(b)) => {
                Value::Duration(a.checked_add(*b).ok_or_else(of)?)
            }
            (Sub, Value::Duration(a), Value::Duration(b)) => {
                Value::Duration(a.checked_sub(*b).ok_or_else(of)?)
            }
            (Mul, Value::Duration(a), Value::Int(b)) | (Mul, Value::Int(b), Value::Duration(a)) => {
                Value::Duration(a.checked_mul(*b).ok_or_else(of)?)
            }
            (Div, Value::Duration(_), Value::Int(0)) => return Err(zero()),
            (Div, Value::Duration(a), Value::Int(b)) => Value::Duration(a / b),
            (Add, Value::Quantity(a), Value::Quantity(b)) => {
                quantity(a.milli.checked_add(b.milli), &a.suffix).ok_or_else(of)?
            }
            (Sub, Value::Quantity(a), Value::Quantity(b)) => {
                quantity(a.milli.checked_sub(b.milli), &a.suffix).ok_or_else(of)?
            }
            (Mul, Value::Quantity(a), Value::Int(b)) | (Mul, Value::Int(b), Value::Quantity(a)) => {
                quantity(a.milli.checked_mul(*b as i128), &a.suffix).ok_or_else(of)?
            }
            (Div, Value::Quantity(_), Value::Int(0)) => return Err(zero()),
            (Div, Value::Quantity(a), Value::Int(b)) => {
                quantity(Some(a.milli / *b as i128), &a.suffix).ok_or_else(of)?
            }
            (Add, Value::List(a), Value::List(b)) => {
                Value::List(Rc::new(a.iter().chain(b.iter()).cloned().collect()))
            }
            (Add, Value::Map(a), Value::Map(b)) => {
                let mut m = (**a).clone();
                m.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
                Value::Map(Rc::new(m))
            }
            _ => return Err(internal(file, expr.span)),
        })
    }

    fn equal(&self, l: &Value<'p>, r: &Value<'p>) -> bool {
        match (l, r) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => *a as f64 == *b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Duration(a), Value::Duration(b)) => a == b,
            (Value::Quantity(a), Value::Quantity(b)) => a.milli == b.milli,
            (Value::Secret(a), Value::Secret(b)) => a == b,
            (Value::Enum(a, i), Value::Enum(b, j)) => a == b && i == j,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| self.equal(x, y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|((k1, v1), (k2, v2))| k1 == k2 && self.equal(v1, v2))
            }
            (Value::Record(a), Value::Record(b)) => Rc::ptr_eq(a, b),
            (Value::Instance(a), Value::Instance(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn call(
        &self,
        expr: &'p Expr,
        name: &'p Ident,
        args: &'p [Expr],
        env: &Env<'p>,
        cluster: Option<&Rc<Instance<'p>>>,
    ) -> Result<Value<'p>> {
        let file = env.file;
        let Some(Resolution::Builtin(builtin)) = self.resolution(file, name.span) else {
            return Err(internal(file, expr.span));
        };
        let values: Vec<Value<'p>> = args
            .iter()
            .map(|a| self.eval(a, env, cluster))
            .collect::<Result<_>>()?;
        let text = |i: usize| -> Rc<str> {
            match &values[i] {
                Value::Str(s) => s.clone(),
                _ => "".into(),
            }
        };
        use Builtin::*;
        Ok(match builtin {
            Len => Value::Int(match &values[0] {
                Value::Str(s) => s.chars().count() as i64,
                Value::List(l) => l.len() as i64,
                Value::Map(m) => m.len() as i64,
                _ => 0,
            }),
            Lower => Value::Str(text(0).to_lowercase().into()),
            Upper => Value::Str(text(0).to_uppercase().into()),
            Join => {
                let parts: Vec<String> = match &values[0] {
                    Value::List(l) => l.iter().map(|v| self.to_text(v)).collect(),
                    _ => Vec::new(),
                };
                Value::Str(parts.join(&text(1)).into())
            }
            Split => Value::List(Rc::new(
                text(0)
                    .split(&*text(1))
                    .map(|s| Value::Str(s.into()))
                    .collect(),
            )),
            Contains => Value::Bool(match &values[0] {
                Value::List(l) => l.iter().any(|v| self.equal(v, &values[1])),
                Value::Map(m) => m.contains_key(&*text(1)),
                Value::Str(s) => s.contains(&*text(1)),
                _ => false,
            }),
            StartsWith => Value::Bool(text(0).starts_with(&*text(1))),
            EndsWith => Value::Bool(text(0).ends_with(&*text(1))),
            Replace => Value::Str(text(0).replace(&*text(1), &text(2)).into()),
            IsDigits => {
                Value::Bool(!text(0).is_empty() && text(0).bytes().all(|b| b.is_ascii_digit()))
            }
            IsDnsLabel => Value::Bool(crate::dns::is_dns_label(&text(0))),
            ToString => Value::Str(self.to_text(&values[0]).into()),
            Base64 => Value::Str(
                base64::engine::general_purpose::STANDARD
                    .encode(text(0).as_bytes())
                    .into(),
            ),
            Sha256 => {
                let digest = sha2::Sha256::digest(text(0).as_bytes());
                Value::Str(
                    digest
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                        .into(),
                )
            }
            Secret => Value::Secret(Rc::new(SecretValue::new(
                text(0).to_string(),
                text(1).to_string(),
            ))),
            Keys => Value::List(Rc::new(match &values[0] {
                Value::Map(m) => m.keys().map(|k| Value::Str(k.as_str().into())).collect(),
                _ => Vec::new(),
            })),
            Values => Value::List(Rc::new(match &values[0] {
                Value::Map(m) => m.values().cloned().collect(),
                _ => Vec::new(),
            })),
            Min | Max => {
                let ord =
                    compare(&values[0], &values[1]).ok_or_else(|| internal(file, expr.span))?;
                let first_wins = if *builtin == Min {
                    ord.is_le()
                } else {
                    ord.is_ge()
                };
                if first_wins {
                    values[0].clone()
                } else {
                    values[1].clone()
                }
            }
            Range => {
                let n = match values[0] {
                    Value::Int(n) => n,
                    _ => 0,
                };
                if !(0..=100_000).contains(&n) {
                    return Err(
                        Diagnostic::error("E0304", format!("range({n}) is out of bounds")).at(
                            file,
                            args[0].span,
                            "must be between 0 and 100000",
                        ),
                    );
                }
                Value::List(Rc::new((0..n).map(Value::Int).collect()))
            }
            Seconds => Value::Int(match values[0] {
                Value::Duration(ms) => ms / 1000,
                _ => 0,
            }),
            CidrSubnet => {
                let (newbits, netnum) = match (&values[1], &values[2]) {
                    (Value::Int(a), Value::Int(b)) => (*a, *b),
                    _ => return Err(internal(file, expr.span)),
                };
                match cidr_subnet(&text(0), newbits, netnum) {
                    Some(s) => Value::Str(s.into()),
                    None => {
                        return Err(Diagnostic::error("E0304", "cidr_subnet: no such subnet")
                            .at(file, expr.span, "invalid prefix, newbits or netnum")
                            .help("the prefix is an IPv4 CIDR like \"10.0.0.0/16\"; prefix length + newbits ≤ 32 and netnum < 2^newbits"));
                    }
                }
            }
        })
    }
}

impl<'p> Instance<'p> {
    fn new(desc: Rc<Description<'p>>, cluster: Option<Rc<Instance<'p>>>) -> Instance<'p> {
        let n = desc.slots.len();
        Instance {
            desc,
            cluster,
            state: RefCell::new(vec![State::Pending; n]),
        }
    }

    /// The cluster for `cluster` in defaults: the owner, or this record if it is one.
    fn cluster_context(self: &Rc<Self>) -> Option<Rc<Instance<'p>>> {
        match &self.cluster {
            Some(c) => Some(c.clone()),
            None => Some(self.clone()),
        }
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
        label: top.label.clone().or_else(|| base.label.clone()),
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

fn quantity<'p>(milli: Option<i128>, suffix: &str) -> Option<Value<'p>> {
    milli.map(|milli| {
        Value::Quantity(Quantity {
            milli,
            suffix: suffix.to_string(),
        })
    })
}

fn compare(l: &Value<'_>, r: &Value<'_>) -> Option<std::cmp::Ordering> {
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
        // An Int value where a Float is typed (`let f: Float = some_int`).
        (Value::Int(a), Value::Float(b)) => (*a as f64).partial_cmp(b),
        (Value::Float(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
        (Value::Quantity(a), Value::Quantity(b)) => Some(a.milli.cmp(&b.milli)),
        _ => None,
    }
}

fn cidr_subnet(prefix: &str, newbits: i64, netnum: i64) -> Option<String> {
    let (addr, len) = prefix.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    let octets: Vec<u32> = addr
        .split('.')
        .map(|o| o.parse::<u8>().ok().map(u32::from))
        .collect::<Option<_>>()?;
    if octets.len() != 4 || !(0..=32).contains(&newbits) || netnum < 0 {
        return None;
    }
    let new_len = len + newbits as u32;
    if len > 32 || new_len > 32 || (netnum as u64) >= (1u64 << newbits) {
        return None;
    }
    let base = octets.iter().fold(0u32, |acc, o| (acc << 8) | o);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let shift = 32 - new_len;
    let addr = (base & mask) | ((netnum as u32).checked_shl(shift).unwrap_or(0));
    Some(format!(
        "{}.{}.{}.{}/{new_len}",
        addr >> 24,
        (addr >> 16) & 255,
        (addr >> 8) & 255,
        addr & 255
    ))
}

fn overflow(file: FileId, span: Span) -> Diagnostic {
    Diagnostic::error("E0303", "arithmetic overflow")
        .at(file, span, "the result does not fit")
        .help("integers are 64-bit; durations are milliseconds in 64 bits")
}

fn internal(file: FileId, span: Span) -> Diagnostic {
    Diagnostic::error(
        "E0300",
        "internal error: the evaluator met an expression the checker did not resolve",
    )
    .at(file, span, "here")
    .help("please report this with the file that triggers it")
}

enum Item_<'p> {
    Type(&'p TypeDecl),
    Let(&'p LetDecl),
    Channel(&'p ChannelDecl),
    Other,
}

fn item(program: &Program, module: ModuleId, index: usize) -> Item_<'_> {
    match program.module(module).ast.items.get(index) {
        Some(crate::syntax::ast::Item::Type(t)) => Item_::Type(t),
        Some(crate::syntax::ast::Item::Let(l)) => Item_::Let(l),
        Some(crate::syntax::ast::Item::Channel(c)) => Item_::Channel(c),
        _ => Item_::Other,
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
