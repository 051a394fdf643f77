//! Expressions: expected and inferred types, names, field access, operators.

use std::collections::HashMap;

use super::{Checker, Frame, LetState, Scope, assignable, promote};
use crate::codes::Code;
use crate::diagnostic::did_you_mean;
use crate::syntax::ast::*;
use crate::syntax::{DURATION_UNITS, QUANTITY_UNITS};
use crate::types::*;

impl<'p> Checker<'p> {
    /// Check `expr` against an expected type, reporting a mismatch.
    pub(super) fn expect(&mut self, expr: &'p Expr, expected: &Ty, scope: &Scope) -> Ty {
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
                Code::E0214,
                format!("expected {}, found `null`", self.show(expected)),
            )
            .at(file, expr.span, "this is always null")
            .help("only optional types (`T?`) accept null; give a value, or a fallback with `??`");
            self.error(d);
            return;
        }
        let mut d = Diagnostic::error(
            Code::E0202,
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
    pub(super) fn infer(&mut self, expr: &'p Expr, expected: Option<&Ty>, scope: &Scope) -> Ty {
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
            ExprKind::Null => self.null(expr, expected, file),
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
            ExprKind::List(items) => self.list_literal(items, want.as_ref(), scope),
            ExprKind::Map(entries) => self.map_literal(expr, entries, want.as_ref(), scope),
            ExprKind::Record { ty, body } => {
                self.record_literal(expr, ty.as_deref(), body, want.as_ref(), scope)
            }
            ExprKind::Name(ident) => self.name(ident, want.as_ref(), scope),
            ExprKind::Field(base, name) => {
                self.field_access(expr, base, name, want.as_ref(), scope)
            }
            ExprKind::Index(base, index) => self.index(base, index, scope),
            ExprKind::Call(name, args) => self.call(expr, name, args, scope),
            ExprKind::Unary(op, operand) => self.unary(expr, *op, operand, expected, scope),
            ExprKind::Binary(BinaryOp::Coalesce, lhs, rhs) => {
                self.coalesce(lhs, rhs, expected, scope)
            }
            ExprKind::Binary(op, lhs, rhs) => self.binary(expr, *op, lhs, rhs, scope),
            ExprKind::If(cond, then, otherwise) => {
                self.conditional(cond, then, otherwise, expected, scope)
            }
            ExprKind::Comprehension {
                body,
                var,
                iter,
                filter,
            } => self.comprehension(body, var, iter, filter.as_deref(), want.as_ref(), scope),
            ExprKind::Paren(inner) => self.infer(inner, expected, scope),
        }
    }

    /// `null`: the expected optional type, or an error where no null is allowed.
    fn null(&mut self, expr: &Expr, expected: Option<&Ty>, file: FileId) -> Ty {
        match expected {
            Some(t @ Ty::Optional(_)) => t.clone(),
            Some(Ty::Error) | None => Ty::Null,
            Some(t) => {
                let t = self.show(t);
                self.error(
                    Diagnostic::error(Code::E0214, format!("expected {t}, found `null`"))
                        .at(file, expr.span, "not optional")
                        .help("only optional types (`T?`) accept null"),
                );
                Ty::Error
            }
        }
    }

    /// `[a, b, …]`: every element has the expected element type, or the first one's.
    fn list_literal(&mut self, items: &'p [Expr], want: Option<&Ty>, scope: &Scope) -> Ty {
        let file = scope.file;
        let elem_expected = match want {
            Some(Ty::List(t)) => Some((**t).clone()),
            _ => None,
        };
        let mut elem: Option<Ty> = elem_expected.clone();
        for item in items {
            let Some(t) = elem.clone() else {
                elem = Some(self.infer(item, None, scope));
                continue;
            };
            let actual = self.infer(item, Some(&t), scope);
            if !assignable(&actual, &t) {
                if elem_expected.is_some() {
                    self.mismatch(item, &actual, &t, file);
                } else {
                    self.error(
                        Diagnostic::error(
                            Code::E0213,
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
        Ty::List(Box::new(elem.unwrap_or(Ty::Error)))
    }

    /// `{"k": v, …}`: a map with unique keys, or `{}` where a record is expected.
    fn map_literal(
        &mut self,
        expr: &Expr,
        entries: &'p [(PlainString, Expr)],
        want: Option<&Ty>,
        scope: &Scope,
    ) -> Ty {
        let file = scope.file;
        if entries.is_empty()
            && let Some(Ty::Record(rid)) = want
        {
            let rid = *rid;
            self.resolve(file, expr.span, Resolution::Record(rid));
            self.check_block(&[], rid, scope, None, expr.span);
            return Ty::Record(rid);
        }
        let mut value_ty = match want {
            Some(Ty::Map(t)) => Some((**t).clone()),
            _ => None,
        };
        let mut keys: HashMap<&str, Span> = HashMap::new();
        for (key, value) in entries {
            if let Some(first) = keys.get(key.value.as_str()) {
                self.error(
                    Diagnostic::error(Code::E0218, format!("key `{}` appears twice", key.value))
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

    /// `Type { … }`, or `{ … }` where a record type is expected.
    fn record_literal(
        &mut self,
        expr: &Expr,
        ty: Option<&TypeExpr>,
        body: &'p Block,
        want: Option<&Ty>,
        scope: &Scope,
    ) -> Ty {
        let file = scope.file;
        let rid = match ty {
            Some(t) => match self.type_expr(scope.module, file, t) {
                Ty::Record(r) => r,
                Ty::Error => return Ty::Error,
                other => {
                    self.error(
                        Diagnostic::error(
                            Code::E0202,
                            format!("{} is not a record type", self.show(&other)),
                        )
                        .at(file, t.span, "cannot build this with `{ … }`"),
                    );
                    return Ty::Error;
                }
            },
            None => match want {
                Some(Ty::Record(r)) => *r,
                Some(Ty::Error) => return Ty::Error,
                _ => {
                    self.error(
                        Diagnostic::error(Code::E0219, "cannot tell which type this record has")
                            .at(file, expr.span, "untyped record")
                            .help("name the type: `TypeName { … }`"),
                    );
                    return Ty::Error;
                }
            },
        };
        self.resolve(file, expr.span, Resolution::Record(rid));
        let header = ty.map_or(expr.span, |t| t.span);
        self.check_block(&body.entries, rid, scope, None, header);
        Ty::Record(rid)
    }

    /// `base[index]`: an Int into a list, a String into a map.
    fn index(&mut self, base: &'p Expr, index: &'p Expr, scope: &Scope) -> Ty {
        let file = scope.file;
        match self.infer(base, None, scope) {
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
                        Code::E0211,
                        format!("cannot index into {}", self.show(&other)),
                    )
                    .at(file, base.span, format!("this is {}", self.show(&other)))
                    .help("only lists (`xs[0]`) and maps (`m[\"key\"]`) can be indexed"),
                );
                Ty::Error
            }
        }
    }

    /// `-x` on numbers, durations and quantities; `!x` on booleans.
    fn unary(
        &mut self,
        expr: &Expr,
        op: UnaryOp,
        operand: &'p Expr,
        expected: Option<&Ty>,
        scope: &Scope,
    ) -> Ty {
        let t = self.infer(operand, expected, scope);
        let ok = match op {
            UnaryOp::Neg => matches!(
                t,
                Ty::Int | Ty::Float | Ty::Duration | Ty::Quantity | Ty::Error
            ),
            UnaryOp::Not => matches!(t, Ty::Bool | Ty::Error),
        };
        if ok {
            return t;
        }
        self.error(
            Diagnostic::error(
                Code::E0209,
                format!("`{}` cannot be applied to {}", op.symbol(), self.show(&t)),
            )
            .at(
                scope.file,
                expr.span,
                format!("operand is {}", self.show(&t)),
            ),
        );
        Ty::Error
    }

    /// `if cond then a else b`: both branches meet the expected type, or each other.
    fn conditional(
        &mut self,
        cond: &'p Expr,
        then: &'p Expr,
        otherwise: &'p Expr,
        expected: Option<&Ty>,
        scope: &Scope,
    ) -> Ty {
        let file = scope.file;
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
                    Code::E0202,
                    format!(
                        "`if` branches differ: {} and {}",
                        self.show(&t),
                        self.show(&e)
                    ),
                )
                .at(file, otherwise.span, format!("this is {}", self.show(&e)))
                .also(file, then.span, format!("this is {}", self.show(&t))),
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

    /// `[body for var in iter if filter]`: `var` is each element of a list or key of a map.
    fn comprehension(
        &mut self,
        body: &'p Expr,
        var: &Ident,
        iter: &'p Expr,
        filter: Option<&'p Expr>,
        want: Option<&Ty>,
        scope: &Scope,
    ) -> Ty {
        let file = scope.file;
        let elem = match self.infer(iter, None, scope) {
            Ty::List(e) => *e,
            Ty::Map(_) => Ty::String,
            Ty::Error => Ty::Error,
            other => {
                self.error(
                    Diagnostic::error(
                        Code::E0202,
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
        let elem_expected = match want {
            Some(Ty::List(t)) => Some((**t).clone()),
            _ => None,
        };
        let t = self.infer(body, elem_expected.as_ref(), &inner);
        Ty::List(Box::new(t))
    }

    fn check_interpolable(&mut self, e: &Expr, t: &Ty, file: FileId) {
        match t {
            Ty::String | Ty::Int | Ty::Float | Ty::Bool | Ty::Duration | Ty::Quantity | Ty::Enum(_) | Ty::Error => {}
            Ty::Secret => self.error(
                Diagnostic::error(Code::E0215, "a Secret cannot be interpolated into a string")
                    .at(file, e.span, "this is a Secret")
                    .help("secrets are never turned into plain text; pass the Secret itself to a `Secret` field"),
            ),
            other => self.error(
                Diagnostic::error(Code::E0215, format!("cannot interpolate {} into a string", self.show(other)))
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
                    Code::E0202,
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
                    Code::E0202,
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
                    Diagnostic::error(Code::E0007, format!("invalid duration `{number}{unit}`"))
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
                            Code::E0305,
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
                    Diagnostic::error(
                        Code::E0103,
                        format!("`{}` is a type, not a value", ident.name),
                    )
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
                        Code::E0103,
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
                Code::E0204,
                format!("`{}` is not a variant of `{}`", ident.name, def.name),
            );
            d = match did_you_mean(&ident.name, names.iter().copied()) {
                Some(s) => d.at(file, ident.span, s),
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
            let mut d = Diagnostic::error(Code::E0205, format!("unknown channel `{}`", ident.name));
            d = match did_you_mean(&ident.name, channels.iter().map(String::as_str)) {
                Some(s) => d.at(file, ident.span, s),
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
        let mut d = Diagnostic::error(Code::E0103, format!("unknown name `{}`", ident.name));
        if let Some(help) = self.variant_help(ident, scope) {
            self.error(d.at(file, ident.span, "not found in this scope").help(help));
            return;
        }
        d = match did_you_mean(&ident.name, candidates.iter().map(String::as_str)) {
            Some(s) => d.at(file, ident.span, s),
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
                            Code::E0204,
                            format!("`{}` is not a variant of `{}`", name.name, def.name),
                        );
                        d = match did_you_mean(&name.name, names.iter().copied()) {
                            Some(s) => d.at(file, name.span, s),
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
                                    Code::E0103,
                                    format!("module `{}` has no value `{}`", b.name, name.name),
                                );
                                d = match did_you_mean(&name.name, names.iter().map(String::as_str))
                                {
                                    Some(s) => d.at(file, name.span, s),
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
                    let record = self.decls.records[r.0 as usize].clone();
                    self.unknown_field(&record, name, file, false);
                    Ty::Error
                }
            },
            Ty::Error => Ty::Error,
            Ty::Optional(_) => {
                self.error(
                    Diagnostic::error(Code::E0211, format!("{} may be null", self.show(&base_ty)))
                        .at(file, base.span, "may be null")
                        .help("give a fallback first: `(x ?? default).field`"),
                );
                Ty::Error
            }
            other => {
                self.error(
                    Diagnostic::error(Code::E0211, format!("{} has no fields", self.show(other)))
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
                        Code::E0209,
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
