//! The evaluator. Record literals and blocks evaluate to *descriptions* (their
//! entries, unevaluated, with the environment they were written in). A description
//! becomes an *instance* when it takes its place in a cluster; the instance evaluates
//! fields lazily, fills defaults in the context of that cluster, and detects cycles.

mod calls;
mod expr;
mod records;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::data::{Data, Quantity, SecretValue};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::resolve::{ModuleId, Program};
use crate::source::FileId;
use crate::span::{IntKeyMap, Span};
use crate::syntax::ast::*;
use crate::types::{ChannelId, Checked, EnumId, RecordId, Resolution};

pub(super) type Result<T> = std::result::Result<T, Diagnostic>;

#[derive(Clone)]
pub(super) enum Value<'p> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text<'p>),
    Duration(i64),
    Quantity(Quantity),
    Secret(Rc<SecretValue>),
    Enum(EnumId, usize),
    List(Rc<Vec<Value<'p>>>),
    /// Keys are always written in a map literal, so they borrow the tree's text.
    Map(Rc<BTreeMap<&'p str, Value<'p>>>),
    Record(Rc<Description<'p>>),
    Instance(Rc<Instance<'p>>),
}

/// A string value: a literal's text borrowed from the tree (most strings are plain
/// literals, and a copy of each for every evaluation was an allocation per node), or
/// text the evaluator built (interpolation, `+`, builtins).
#[derive(Clone)]
pub(super) enum Text<'p> {
    Tree(&'p str),
    Built(Rc<str>),
}

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Text::Tree(s) => s,
            Text::Built(s) => s,
        }
    }
}

impl From<String> for Text<'_> {
    fn from(s: String) -> Self {
        Text::Built(s.into())
    }
}

/// What a record literal or block says, before it is placed.
pub(super) struct Description<'p> {
    ty: RecordId,
    slots: Vec<Option<Slot<'p>>>,
    label: Option<&'p str>,
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
    label: Option<&'p str>,
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
    /// A comprehension variable; the name is borrowed from the tree, not copied per element.
    Local(&'p str, Value<'p>),
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
                && *n == name
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
    lets: RefCell<IntKeyMap<(ModuleId, usize), LetSlot<'p>>>,
    channels: RefCell<IntKeyMap<ChannelId, Rc<Description<'p>>>>,
    /// Records read field by field (`catalog[t].max_pods`), by the addresses of their
    /// description and cluster: each read would otherwise place the record anew and
    /// evaluate its field again. An instance's fields depend only on those two, so the
    /// same instance serves every read; emptied after each cluster so that the
    /// cluster's values do not outlive it.
    read_instances: RefCell<IntKeyMap<(usize, usize), Rc<Instance<'p>>>>,
    /// Every instance placed since the last cluster or channel was done. Values form
    /// reference cycles (an instance's fields hold the descriptions of its blocks, whose
    /// environments hold the instance), so each instance's fields are emptied when its
    /// cluster is done; without that every cluster's values outlived it, and the
    /// evaluator's memory grew with the fleet.
    placed: RefCell<Vec<Rc<Instance<'p>>>>,
}

impl<'p> Evaluator<'p> {
    pub fn new(program: &'p Program, checked: &'p Checked) -> Evaluator<'p> {
        Evaluator {
            program,
            checked,
            lets: RefCell::new(IntKeyMap::default()),
            channels: RefCell::new(IntKeyMap::default()),
            read_instances: RefCell::new(IntKeyMap::default()),
            placed: RefCell::new(Vec::new()),
        }
    }

    /// `desc` placed in `cluster`, to be released when the cluster is done.
    fn place(
        &self,
        desc: Rc<Description<'p>>,
        cluster: Option<Rc<Instance<'p>>>,
    ) -> Rc<Instance<'p>> {
        let instance = Rc::new(Instance::new(desc, cluster));
        self.placed.borrow_mut().push(instance.clone());
        instance
    }

    /// Empty the fields of every instance placed since the last release, which breaks
    /// the cycles among them so that they are freed. An instance that something still
    /// holds (a `let`'s value, evaluated once for all clusters) evaluates its fields
    /// again when next read, to the same values: they depend only on its description
    /// and its cluster.
    fn release_placed(&self) {
        self.read_instances.borrow_mut().clear();
        let placed = std::mem::take(&mut *self.placed.borrow_mut());
        for instance in placed {
            instance.state.borrow_mut().fill(State::Pending);
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
        let rid = self.checked.decls.cluster_type.ok_or_else(|| {
            Diagnostic::error(Code::E0300, "the prelude declares no `Cluster` type")
        })?;
        let env = self.module_env(module);
        let desc = self.describe(
            rid,
            &decl.body.entries,
            &env,
            Some(&decl.id.value),
            (env.file, decl.id.span),
        )?;
        let instance = self.place(desc, None);
        let data = self.materialize(&instance);
        self.release_placed();
        data
    }

    pub fn channel(&self, id: ChannelId) -> Result<Data> {
        let desc = self.channel_description(id)?;
        let instance = self.place(desc, None);
        let data = self.materialize(&instance);
        self.release_placed();
        data
    }

    fn channel_description(&self, id: ChannelId) -> Result<Rc<Description<'p>>> {
        if let Some(d) = self.channels.borrow().get(&id) {
            return Ok(d.clone());
        }
        let def = self.checked.decls.channel(id);
        let Item_::Channel(decl) = item(self.program, def.site.module, def.site.item) else {
            return Err(Diagnostic::error(
                Code::E0300,
                "channel declaration not found",
            ));
        };
        let rid = self.checked.decls.channel_type.ok_or_else(|| {
            Diagnostic::error(Code::E0300, "the prelude declares no `Channel` type")
        })?;
        let env = self.module_env(def.site.module);
        let desc = self.describe(
            rid,
            &decl.body.entries,
            &env,
            Some(&def.name),
            (env.file, decl.name.span),
        )?;
        self.channels.borrow_mut().insert(id, desc.clone());
        Ok(desc)
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

fn overflow(file: FileId, span: Span) -> Diagnostic {
    Diagnostic::error(Code::E0303, "arithmetic overflow")
        .at(file, span, "the result does not fit")
        .help("integers are 64-bit; durations are milliseconds in 64 bits")
}

fn internal(file: FileId, span: Span) -> Diagnostic {
    Diagnostic::error(
        Code::E0300,
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::rc::Weak;

    use super::*;
    use crate::source::MemoryFs;

    #[test]
    fn a_clusters_instances_are_freed_when_it_is_done() {
        let mut fs = MemoryFs::new();
        fs.insert(
            "fleet/main.flt",
            "channel stable {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"main\"\n}\n\
             let types = [\"m5.large\"]\n\
             cluster \"c1\" {\n  account = \"123456789012\"\n  region = \"eu-central-1\"\n  environment = test\n  channel = stable\n  api_server_url = \"https://${id}.example.org\"\n  node_pool \"w\" {\n    instance_types = types\n    min_size = 1\n    max_size = 3\n    update {\n      max_surge = 2\n    }\n  }\n}\n",
        );
        let program = crate::resolve::load(&fs, Path::new("fleet"));
        let checked = crate::types::check(&program);
        assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
        let module = program
            .module_ids()
            .find(|m| !program.module(*m).is_std)
            .unwrap();
        let decl = program
            .module(module)
            .ast
            .items
            .iter()
            .find_map(|item| match item {
                crate::syntax::ast::Item::Cluster(decl) => Some(decl),
                _ => None,
            })
            .unwrap();
        let evaluator = Evaluator::new(&program, &checked);
        for _ in 0..2 {
            let data = evaluator.cluster(module, decl).unwrap();
            assert_eq!(data.get("id").and_then(Data::as_str), Some("c1"));
            let pool = &data.get("node_pools").unwrap().as_list()[0];
            assert_eq!(pool.get("max_size").and_then(Data::as_int), Some(3));
            assert!(evaluator.placed.borrow().is_empty());
        }

        // What `cluster` does, watching the instances: the cluster's fields hold its
        // node pool's description, whose environment holds the cluster.
        let rid = checked.decls.cluster_type.unwrap();
        let env = evaluator.module_env(module);
        let desc = evaluator
            .describe(
                rid,
                &decl.body.entries,
                &env,
                Some(&decl.id.value),
                (env.file, decl.id.span),
            )
            .unwrap();
        let instance = evaluator.place(desc, None);
        evaluator.materialize(&instance).unwrap();
        drop(instance);
        let placed: Vec<Weak<Instance>> = evaluator
            .placed
            .borrow()
            .iter()
            .map(Rc::downgrade)
            .collect();
        assert!(
            placed.len() > 2,
            "the cluster, its pool and its update block"
        );
        evaluator.release_placed();
        assert!(placed.iter().all(|i| i.upgrade().is_none()));
    }
}
