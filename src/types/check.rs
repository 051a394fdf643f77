//! The type checker: declarations first (so order in files does not matter), then
//! every let, type default, check, channel and cluster, driven by expected types.

mod blocks;
mod calls;
mod declarations;
mod expressions;

use std::collections::{HashMap, HashSet};

use super::*;
use crate::codes::Code;
use crate::resolve::LoadedModule;
use crate::syntax::ast::Item;

pub(super) fn run(program: &Program) -> Checked {
    let mut checker = Checker {
        program,
        decls: Declarations::default(),
        resolutions: IntKeyMap::with_capacity_and_hasher(
            expected_resolutions(program),
            Default::default(),
        ),
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
    // Only a program without errors hears about unused lets: tests and fleets mid-edit
    // often hold a let for a moment, and the warning would bury the error that matters.
    let has_errors = |d: &[Diagnostic]| d.iter().any(Diagnostic::is_error);
    if !has_errors(&program.diagnostics) && !has_errors(&checker.diagnostics) {
        checker.warn_unused_lets();
    }
    Checked {
        decls: checker.decls,
        resolutions: checker.resolutions,
        let_types: checker.let_types,
        diagnostics: checker.diagnostics,
    }
}

/// About as many resolutions as the program will have, so that the table is allocated
/// once: growing it copies every entry into a table twice the size, and the fresh
/// memory of each copy is zeroed by the kernel on first touch (8% of `eval`'s time at
/// 1,000 clusters). Fleets and the stdlib have about one resolution per 24 bytes of
/// source; a table reserved for more than it holds costs one control byte per
/// unused bucket.
fn expected_resolutions(program: &Program) -> usize {
    let bytes: usize = program.sources.iter().map(|(_, s)| s.text.len()).sum();
    bytes / RESOLUTION_BYTES
}

/// Source bytes per resolution, rounded down from the 24 of the generated fleets.
const RESOLUTION_BYTES: usize = 20;

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
    resolutions: IntKeyMap<(FileId, u32, u32), Resolution>,
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

    /// A `let` that nothing reads, in any module, is never evaluated: even an error in
    /// it (`let x = 12 / 0`) would pass unseen. Names starting with `_` are left unused
    /// on purpose; the stdlib's lets are there for fleets to use.
    fn warn_unused_lets(&mut self) {
        let used: HashSet<(ModuleId, usize)> = self
            .resolutions
            .values()
            .filter_map(|r| match r {
                Resolution::Let(module, item) => Some((*module, *item)),
                _ => None,
            })
            .collect();
        for module in self.program.module_ids() {
            let m = self.module(module);
            if m.is_std {
                continue;
            }
            for (item, it) in m.ast.items.iter().enumerate() {
                let Item::Let(decl) = it else { continue };
                let name = &decl.name.name;
                if name.starts_with('_') || used.contains(&(module, item)) {
                    continue;
                }
                self.diagnostics.push(
                    Diagnostic::warning(Code::W0001, format!("`{name}` is never used"))
                        .at(m.file, decl.name.span, "unused `let`")
                        .help(format!(
                            "remove it, or name it `_{name}` if it is meant to stay unused"
                        )),
                );
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
