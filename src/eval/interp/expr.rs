//! Expressions: names, lets, field access, operators and equality.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::{
    Env, Evaluator, FrameKind, Instance, Item_, Result, Text, Value, internal, item, overflow,
};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::eval::data::Quantity;
use crate::resolve::ModuleId;
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::*;
use crate::types::Resolution;
use crate::units::format_duration;

impl<'p> Evaluator<'p> {
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
            ExprKind::Str(parts) => self.string(parts, env, cluster)?,
            ExprKind::UnitNumber { number, unit } => self.unit_number(expr, number, unit, file)?,
            ExprKind::List(items) => Value::List(Rc::new(
                items
                    .iter()
                    .map(|i| self.eval(i, env, cluster))
                    .collect::<Result<_>>()?,
            )),
            ExprKind::Map(entries) => {
                if let Some(Resolution::Record(rid)) = resolution() {
                    // `{}` where a record was expected: the record with only its defaults.
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
                    map.insert(k.value.as_str(), self.eval(v, env, cluster)?);
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
            ExprKind::Index(base, index) => self.index(expr, base, index, env, cluster)?,
            ExprKind::Call(name, args) => self.call(expr, name, args, env, cluster)?,
            ExprKind::Unary(op, operand) => self.unary(expr, *op, operand, env, cluster)?,
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
            } => self.comprehension(body, var, iter, filter.as_deref(), env, cluster)?,
            ExprKind::Paren(inner) => self.eval(inner, env, cluster)?,
        })
    }

    /// A string literal, its interpolations evaluated and shown as text.
    fn string(
        &self,
        parts: &'p [StrPart],
        env: &Env<'p>,
        cluster: Option<&Rc<Instance<'p>>>,
    ) -> Result<Value<'p>> {
        // Most strings are plain text: borrowed from the tree, not copied.
        if let [StrPart::Text(text)] = parts {
            return Ok(Value::Str(Text::Tree(text)));
        }
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
        Ok(Value::Str(out.into()))
    }

    /// `500Mi` or `5m`: a quantity where the checker resolved one, otherwise a duration.
    fn unit_number(
        &self,
        expr: &Expr,
        number: &str,
        unit: &str,
        file: FileId,
    ) -> Result<Value<'p>> {
        if let Some(Resolution::Quantity) = self.resolution(file, expr.span) {
            return match Quantity::parse(number, unit) {
                Some(q) => Ok(Value::Quantity(q)),
                None => Err(Diagnostic::error(
                    Code::E0007,
                    format!("invalid quantity `{number}{unit}`"),
                )
                .at(file, expr.span, "not exact in milli-units, or too large")
                .help("write e.g. `250m`, `500Mi`, `1.5Gi`")),
            };
        }
        match crate::units::parse_duration_ms(number, unit) {
            Some(ms) => Ok(Value::Duration(ms)),
            None => Err(Diagnostic::error(
                Code::E0007,
                format!("invalid duration `{number}{unit}`"),
            )
            .at(
                file,
                expr.span,
                "not a whole number of milliseconds, or too large",
            )),
        }
    }

    /// `list[i]` or `map["key"]`; an index out of range or a missing key is an error.
    fn index(
        &self,
        expr: &Expr,
        base: &'p Expr,
        index: &'p Expr,
        env: &Env<'p>,
        cluster: Option<&Rc<Instance<'p>>>,
    ) -> Result<Value<'p>> {
        let file = env.file;
        let b = self.eval(base, env, cluster)?;
        let i = self.eval(index, env, cluster)?;
        match (&b, &i) {
            (Value::List(items), Value::Int(n)) => {
                let found = if *n < 0 { None } else { items.get(*n as usize) };
                found.cloned().ok_or_else(|| {
                    Diagnostic::error(Code::E0304, format!("index {n} is out of range"))
                        .at(
                            file,
                            index.span,
                            format!("the list has {} elements", items.len()),
                        )
                        .help("indices start at 0")
                })
            }
            (Value::Map(m), Value::Str(k)) => m.get(&**k).cloned().ok_or_else(|| {
                Diagnostic::error(Code::E0304, format!("key `{}` is not in the map", &**k))
                    .at(file, index.span, "missing key")
                    .help("check with `contains(map, key)` first, or use a default")
            }),
            _ => Err(internal(file, expr.span)),
        }
    }

    /// `!b` on booleans; `-x` on numbers, durations and quantities (overflow is an error).
    fn unary(
        &self,
        expr: &Expr,
        op: UnaryOp,
        operand: &'p Expr,
        env: &Env<'p>,
        cluster: Option<&Rc<Instance<'p>>>,
    ) -> Result<Value<'p>> {
        let file = env.file;
        Ok(match (op, self.eval(operand, env, cluster)?) {
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
        })
    }

    /// `[body for var in iter if filter]` over a list's elements or a map's keys.
    fn comprehension(
        &self,
        body: &'p Expr,
        var: &'p Ident,
        iter: &'p Expr,
        filter: Option<&'p Expr>,
        env: &Env<'p>,
        cluster: Option<&Rc<Instance<'p>>>,
    ) -> Result<Value<'p>> {
        // Elements are taken from the list (or the map's keys) as the loop goes, without
        // first copying them into a vector of their own.
        match &self.eval(iter, env, cluster)? {
            Value::List(items) => {
                self.comprehend(body, var, items.iter().cloned(), filter, env, cluster)
            }
            Value::Map(m) => {
                let keys = m.keys().map(|k| Value::Str(Text::Tree(k)));
                self.comprehend(body, var, keys, filter, env, cluster)
            }
            _ => Err(internal(env.file, iter.span)),
        }
    }

    fn comprehend(
        &self,
        body: &'p Expr,
        var: &'p Ident,
        items: impl ExactSizeIterator<Item = Value<'p>>,
        filter: Option<&'p Expr>,
        env: &Env<'p>,
        cluster: Option<&Rc<Instance<'p>>>,
    ) -> Result<Value<'p>> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let inner = env.push(FrameKind::Local(&var.name, item));
            if let Some(f) = filter
                && !matches!(self.eval(f, &inner, cluster)?, Value::Bool(true))
            {
                continue;
            }
            out.push(self.eval(body, &inner, cluster)?);
        }
        Ok(Value::List(Rc::new(out)))
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
                    return Err(Diagnostic::error(Code::E0306, "`cluster` is used outside of a cluster")
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
                        return Err(Diagnostic::error(Code::E0300, "let not found"));
                    };
                    Err(Diagnostic::error(
                        Code::E0305,
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
            return Err(Diagnostic::error(Code::E0300, "let not found"));
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
        let instance = match base {
            Value::Instance(i) => i.clone(),
            Value::Record(desc) => {
                let context = if Some(desc.ty) == self.checked.decls.channel_type {
                    None
                } else {
                    cluster
                };
                let key = (
                    Rc::as_ptr(desc) as usize,
                    context.map_or(0, |c| Rc::as_ptr(c) as usize),
                );
                let cached = self.read_instances.borrow().get(&key).cloned();
                match cached {
                    Some(instance) => instance,
                    None => {
                        let instance = self.place(desc.clone(), context.cloned());
                        self.read_instances
                            .borrow_mut()
                            .insert(key, instance.clone());
                        instance
                    }
                }
            }
            Value::Null => {
                return Err(Diagnostic::error(
                    Code::E0304,
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

    pub(super) fn to_text(&self, v: &Value<'p>) -> String {
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
            Diagnostic::error(Code::E0301, "division by zero")
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
                    return Err(Diagnostic::error(Code::E0303, "arithmetic overflow")
                        .at(file, expr.span, "the result is not a finite number")
                        .help("floats are 64-bit and must stay finite (at most about 1.8e308)"));
                }
                Value::Float(x)
            }
            (Add, Value::Str(a), Value::Str(b)) => Value::Str([&**a, &**b].concat().into()),
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
                m.extend(b.iter().map(|(k, v)| (*k, v.clone())));
                Value::Map(Rc::new(m))
            }
            _ => return Err(internal(file, expr.span)),
        })
    }

    pub(super) fn equal(&self, l: &Value<'p>, r: &Value<'p>) -> bool {
        match (l, r) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => *a as f64 == *b,
            (Value::Str(a), Value::Str(b)) => **a == **b,
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
}

fn quantity<'p>(milli: Option<i128>, suffix: &str) -> Option<Value<'p>> {
    milli.map(|milli| {
        Value::Quantity(Quantity {
            milli,
            suffix: suffix.to_string(),
        })
    })
}

pub(super) fn compare(l: &Value<'_>, r: &Value<'_>) -> Option<std::cmp::Ordering> {
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
        // An Int value where a Float is typed (`let f: Float = some_int`).
        (Value::Int(a), Value::Float(b)) => (*a as f64).partial_cmp(b),
        (Value::Float(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Value::Str(a), Value::Str(b)) => Some((**a).cmp(&**b)),
        (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
        (Value::Quantity(a), Value::Quantity(b)) => Some(a.milli.cmp(&b.milli)),
        _ => None,
    }
}
