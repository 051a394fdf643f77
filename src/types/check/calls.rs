//! Calls of built-in functions: the name and argument count here, the argument types by
//! each builtin's own rule (`crate::builtins`).

use super::{Checker, Scope};
use crate::builtins::{self, ArgTypes, BUILTINS};
use crate::codes::Code;
use crate::diagnostic::did_you_mean;
use crate::syntax::ast::*;
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
            self.unknown_function(name, file);
            self.infer_all(args, scope);
            return Ty::Error;
        };
        self.resolve(file, name.span, Resolution::Builtin(builtin));
        let arity = builtin.arity();
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
                .help(format!("signature: {}", builtin.signature())),
            );
            self.infer_all(args, scope);
            return Ty::Error;
        }
        builtin.check(&mut CallArgs {
            checker: self,
            builtin,
            args,
            scope,
        })
    }

    fn unknown_function(&mut self, name: &Ident, file: FileId) {
        let names = BUILTINS.iter().map(|d| d.name);
        let d = Diagnostic::error(Code::E0208, format!("unknown function `{}`", name.name));
        let d = match did_you_mean(&name.name, names.clone()) {
            Some(s) => d.at(file, name.span, s),
            None => d.at(file, name.span, "not a builtin").help(format!(
                "builtins: {}",
                names.collect::<Vec<_>>().join(", ")
            )),
        };
        self.error(d);
    }

    /// Arguments of a call that failed already: still checked, for their own errors.
    fn infer_all(&mut self, args: &'p [Expr], scope: &Scope) {
        for a in args {
            self.infer(a, None, scope);
        }
    }
}

/// A call's arguments, lent to its builtin's type rule.
struct CallArgs<'c, 'p> {
    checker: &'c mut Checker<'p>,
    builtin: Builtin,
    args: &'p [Expr],
    scope: &'c Scope,
}

impl ArgTypes for CallArgs<'_, '_> {
    fn infer(&mut self, i: usize) -> Ty {
        self.checker.infer(&self.args[i], None, self.scope)
    }

    fn expect(&mut self, i: usize, ty: &Ty) {
        self.checker.expect(&self.args[i], ty, self.scope);
    }

    fn reject(&mut self, i: usize, ty: &Ty) -> Ty {
        let shown = self.checker.show(ty);
        let builtin = self.builtin;
        self.checker.error(
            Diagnostic::error(
                Code::E0202,
                format!("`{}` cannot take {shown}", builtin.name()),
            )
            .at(
                self.scope.file,
                self.args[i].span,
                format!("this is {shown}"),
            )
            .help(format!("signature: {}", builtin.signature())),
        );
        Ty::Error
    }
}
