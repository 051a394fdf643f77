//! Calls of built-in functions: the arguments evaluated here, the call by each
//! builtin's own rule (`crate::builtins`).

use std::cmp::Ordering;
use std::rc::Rc;

use super::expr::compare;
use super::{Env, Evaluator, Instance, Result, Value, internal};
use crate::builtins::{self, Args, Fault, View};
use crate::diagnostic::Diagnostic;
use crate::eval::data::SecretValue;
use crate::syntax::ast::*;
use crate::types::Resolution;

impl<'p> Evaluator<'p> {
    pub(super) fn call(
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
        let call = CallValues {
            evaluator: self,
            values,
        };
        builtins::evaluate(*builtin, &call).map_err(|fault| match fault {
            Fault::Internal => internal(file, expr.span),
            Fault::Invalid {
                code,
                message,
                arg,
                label,
                help,
            } => {
                let span = arg.map_or(expr.span, |i| args[i].span);
                let d = Diagnostic::error(code, message).at(file, span, label);
                match help {
                    Some(h) => d.help(h),
                    None => d,
                }
            }
        })
    }
}

/// A call's evaluated arguments, lent to its builtin.
struct CallValues<'e, 'p> {
    evaluator: &'e Evaluator<'p>,
    values: Vec<Value<'p>>,
}

impl<'p> Args for CallValues<'_, 'p> {
    type Value = Value<'p>;

    fn arg(&self, i: usize) -> &Value<'p> {
        &self.values[i]
    }

    fn view<'v>(&self, value: &'v Value<'p>) -> View<'v, Value<'p>> {
        match value {
            Value::Str(s) => View::Str(s),
            Value::Int(n) => View::Int(*n),
            Value::Duration(ms) => View::Duration(*ms),
            Value::List(items) => View::List(items),
            Value::Map(entries) => View::Map(entries),
            _ => View::Other,
        }
    }

    fn to_text(&self, value: &Value<'p>) -> String {
        self.evaluator.to_text(value)
    }

    fn equal(&self, a: &Value<'p>, b: &Value<'p>) -> bool {
        self.evaluator.equal(a, b)
    }

    fn compare(&self, a: &Value<'p>, b: &Value<'p>) -> Option<Ordering> {
        compare(a, b)
    }

    fn str(&self, s: String) -> Value<'p> {
        Value::Str(s.into())
    }

    fn int(&self, n: i64) -> Value<'p> {
        Value::Int(n)
    }

    fn bool(&self, b: bool) -> Value<'p> {
        Value::Bool(b)
    }

    fn list(&self, items: Vec<Value<'p>>) -> Value<'p> {
        Value::List(Rc::new(items))
    }

    fn secret(&self, name: String, value: String) -> Value<'p> {
        Value::Secret(Rc::new(SecretValue::new(name, value)))
    }
}
