//! Calls of built-in functions.

use super::{Checker, Scope};
use crate::codes::Code;
use crate::diagnostic::did_you_mean;
use crate::syntax::ast::*;
use crate::types::builtins::{self, Builtin};
use crate::types::*;

impl<'p> Checker<'p> {
    pub(super) fn call(
        &mut self,
        expr: &Expr,
        name: &Ident,
        args: &'p [Expr],
        scope: &Scope,
    ) -> Ty {
        let file = scope.file;
        let Some(builtin) = builtins::lookup(&name.name) else {
            let names = super::BUILTINS.iter().map(|(n, ..)| *n);
            let mut d = Diagnostic::error(Code::E0208, format!("unknown function `{}`", name.name));
            d = match did_you_mean(&name.name, names) {
                Some(s) => d.at(file, name.span, s),
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
                    Code::E0208,
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
                Diagnostic::error(Code::E0202, format!("`{}` cannot take {shown}", name.name))
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
}
