//! Types: the declarations of a program (records, enums, channels, clusters), the
//! type of every expression, and the errors found while checking them.
//!
//! The checker also records how each name and literal was resolved ([`Resolution`]),
//! so the evaluator and the language server do not resolve anything a second time.

mod check;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::diagnostic::Diagnostic;
use crate::resolve::{ModuleId, Program};
use crate::source::FileId;
use crate::span::{IntKeyMap, Span};

pub use crate::builtins::Builtin;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub u32);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnumId(pub u32);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u32);

#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    String,
    Int,
    Float,
    Bool,
    Duration,
    Quantity,
    Secret,
    /// The type of `null` before it meets an optional.
    Null,
    List(Box<Ty>),
    Map(Box<Ty>),
    Optional(Box<Ty>),
    Enum(EnumId),
    Record(RecordId),
    /// Unknown because of an earlier error (or an empty list); compatible with anything,
    /// so one mistake is reported once.
    Error,
}

impl Ty {
    pub fn optional(self) -> Ty {
        match self {
            Ty::Optional(_) | Ty::Null | Ty::Error => self,
            other => Ty::Optional(Box::new(other)),
        }
    }

    /// The type without its `?`.
    pub fn required(&self) -> &Ty {
        match self {
            Ty::Optional(inner) => inner,
            other => other,
        }
    }
}

/// Displays a type with names taken from the declarations.
pub struct TyDisplay<'a> {
    pub ty: &'a Ty,
    pub decls: &'a Declarations,
}

impl fmt::Display for TyDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |ty| TyDisplay {
            ty,
            decls: self.decls,
        };
        match self.ty {
            Ty::String => write!(f, "String"),
            Ty::Int => write!(f, "Int"),
            Ty::Float => write!(f, "Float"),
            Ty::Bool => write!(f, "Bool"),
            Ty::Duration => write!(f, "Duration"),
            Ty::Quantity => write!(f, "Quantity"),
            Ty::Secret => write!(f, "Secret"),
            Ty::Null => write!(f, "null"),
            Ty::List(t) => write!(f, "[{}]", show(t)),
            Ty::Map(t) => write!(f, "{{String: {}}}", show(t)),
            Ty::Optional(t) => write!(f, "{}?", show(t)),
            Ty::Enum(e) => write!(f, "{}", self.decls.enum_def(*e).name),
            Ty::Record(r) => write!(f, "{}", self.decls.record(*r).name),
            Ty::Error => write!(f, "_"),
        }
    }
}

/// Where a declaration's text is: module, item index, and the spans to point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeclSite {
    pub module: ModuleId,
    pub file: FileId,
    pub item: usize,
    /// The declared name.
    pub name_span: Span,
}

#[derive(Clone, Debug)]
pub struct FieldDef {
    pub name: String,
    pub ty: Ty,
    pub doc: Option<String>,
    /// Index of the field's member in the type declaration (for its default expression).
    pub member: usize,
    pub has_default: bool,
    /// Set by the block label (`node_pool "NAME"`).
    pub is_label: bool,
    /// Written as repeated `NAME { … }` blocks (`@block("NAME")`).
    pub block_name: Option<String>,
    pub name_span: Span,
}

impl FieldDef {
    pub fn is_required(&self) -> bool {
        !self.has_default && !matches!(self.ty, Ty::Optional(_))
    }
}

#[derive(Clone, Debug)]
pub struct RecordDef {
    pub name: String,
    pub doc: Option<String>,
    pub site: DeclSite,
    pub fields: Vec<FieldDef>,
    /// Member indices of `check` declarations.
    pub checks: Vec<usize>,
}

impl RecordDef {
    pub fn field(&self, name: &str) -> Option<(usize, &FieldDef)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    pub fn label_field(&self) -> Option<usize> {
        self.fields.iter().position(|f| f.is_label)
    }

    /// The repeated-block field for `NAME { … }` entries.
    pub fn block_field(&self, block: &str) -> Option<(usize, &FieldDef)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.block_name.as_deref() == Some(block))
    }
}

#[derive(Clone, Debug)]
pub struct EnumDef {
    pub name: String,
    pub doc: Option<String>,
    pub site: DeclSite,
    pub variants: Vec<VariantDef>,
}

#[derive(Clone, Debug)]
pub struct VariantDef {
    pub name: String,
    pub doc: Option<String>,
    pub span: Span,
}

/// `type NAME = TYPE`.
#[derive(Clone, Debug)]
pub struct AliasDef {
    pub name: String,
    pub doc: Option<String>,
    pub site: DeclSite,
    /// The type it names (`Ty::Error` until resolved, or when it cannot be).
    pub target: Ty,
}

#[derive(Clone, Debug)]
pub struct ChannelDef {
    pub name: String,
    pub site: DeclSite,
}

#[derive(Clone, Debug)]
pub struct ClusterDef {
    pub id: String,
    pub site: DeclSite,
}

/// What a module-level name refers to.
#[derive(Clone, Debug, PartialEq)]
pub enum Def {
    Let(ModuleId, usize),
    Record(RecordId),
    Enum(EnumId),
    /// `type NAME = TYPE`, by index into `Declarations::aliases`.
    TypeAlias(usize),
    Channel(ChannelId),
    /// `import "…" as NAME`.
    Alias(Vec<ModuleId>),
}

/// Every declaration in the program, and each module's names.
#[derive(Default)]
pub struct Declarations {
    /// Shared so that the checker can hold a record's definition while it checks a
    /// block of it (one per node pool, cluster, …) without copying every field's
    /// name, type and doc comment.
    pub records: Vec<Arc<RecordDef>>,
    pub enums: Vec<EnumDef>,
    pub aliases: Vec<AliasDef>,
    pub channels: Vec<ChannelDef>,
    pub clusters: Vec<ClusterDef>,
    pub scopes: HashMap<ModuleId, HashMap<String, Def>>,
    /// The prelude's `Cluster` and `Channel` types, which top-level blocks instantiate.
    pub cluster_type: Option<RecordId>,
    pub channel_type: Option<RecordId>,
}

impl Declarations {
    pub fn record(&self, id: RecordId) -> &RecordDef {
        &self.records[id.0 as usize]
    }

    pub fn enum_def(&self, id: EnumId) -> &EnumDef {
        &self.enums[id.0 as usize]
    }

    pub fn channel(&self, id: ChannelId) -> &ChannelDef {
        &self.channels[id.0 as usize]
    }

    pub fn show<'a>(&'a self, ty: &'a Ty) -> TyDisplay<'a> {
        TyDisplay { ty, decls: self }
    }

    /// Look a name up in a module's scope.
    pub fn lookup(&self, module: ModuleId, name: &str) -> Option<&Def> {
        self.scopes.get(&module).and_then(|s| s.get(name))
    }
}

/// How the checker resolved one expression (keyed by file and span).
#[derive(Clone, Debug, PartialEq)]
pub enum Resolution {
    /// A comprehension variable.
    Local,
    /// A field of the enclosing record at this depth (0 = innermost block).
    Field {
        depth: usize,
        record: RecordId,
        field: usize,
    },
    /// `cluster` inside a default or check: the cluster the record belongs to.
    ClusterContext,
    Let(ModuleId, usize),
    Channel(ChannelId),
    Variant(EnumId, usize),
    /// A unit number read as a duration or as a quantity.
    Duration,
    Quantity,
    /// An `Int` literal where a `Float` is expected.
    IntAsFloat,
    /// A record literal (or `{}` where a record is expected) of this type.
    Record(RecordId),
    /// A field name written in a block (`max_size = 3`, `update { … }`).
    FieldEntry {
        record: RecordId,
        field: usize,
    },
    /// A call of a builtin.
    Builtin(Builtin),
}

/// The checker's results: declarations, resolutions and diagnostics.
pub struct Checked {
    pub decls: Declarations,
    pub resolutions: IntKeyMap<(FileId, u32, u32), Resolution>,
    /// Type of every let binding, by (module, item).
    pub let_types: HashMap<(ModuleId, usize), Ty>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn resolution(&self, file: FileId, span: Span) -> Option<&Resolution> {
        self.resolutions.get(&(file, span.start, span.end))
    }
}

/// Type-check a loaded program.
pub fn check(program: &Program) -> Checked {
    check::run(program)
}
