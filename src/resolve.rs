//! Loading modules: the user's files, what they import (relative files, directories
//! and the embedded stdlib), import cycles, and each module's scope of names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::codes::Code;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::source::{FileId, FileSystem, SourceMap, normalize};
use crate::span::Span;
use crate::syntax::ast::{Item, Module};
use crate::syntax::{parse, parse_all};

/// Index of a module in [`Program::modules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleId(pub u32);

/// The stdlib, compiled into the binary so results never depend on an install path.
pub const STDLIB: &[(&str, &str)] = &[
    ("std/aws", include_str!("../stdlib/std/aws.flt")),
    ("std/catalog", include_str!("../stdlib/std/catalog.flt")),
];

/// The module whose names are in scope everywhere.
pub const PRELUDE: &str = "std/aws";

pub struct LoadedModule {
    pub file: FileId,
    /// Shared: a stdlib module's tree is parsed once per process ([`parsed_std`]).
    pub ast: Arc<Module>,
    pub is_std: bool,
    /// For each `import` item (by item index): the modules it brings in.
    pub imports: HashMap<usize, Vec<ModuleId>>,
}

/// Every module reachable from the user's files, parsed.
pub struct Program {
    pub sources: SourceMap,
    pub modules: Vec<LoadedModule>,
    /// The user's own files (the fleet); clusters are collected from these and what they import.
    pub roots: Vec<ModuleId>,
    pub prelude: ModuleId,
    pub diagnostics: Vec<Diagnostic>,
}

impl Program {
    pub fn module(&self, id: ModuleId) -> &LoadedModule {
        &self.modules[id.0 as usize]
    }

    pub fn module_ids(&self) -> impl Iterator<Item = ModuleId> + '_ {
        (0..self.modules.len()).map(|i| ModuleId(i as u32))
    }

    pub fn module_of_file(&self, file: FileId) -> Option<ModuleId> {
        self.modules
            .iter()
            .position(|m| m.file == file)
            .map(|i| ModuleId(i as u32))
    }
}

/// Parses some of the user's files in the loader's place: the language server keeps
/// each open document's last parse and parses again only what an edit changed.
pub trait Parses: Sync {
    /// The tree and problems [`crate::syntax::parse`] gives for `text`, the text of
    /// `path` (file `file` of this program), or `None` to leave the file to the loader.
    fn parse(&self, file: FileId, path: &Path, text: &str) -> Option<Parsed>;
}

/// A file's tree and its problems.
pub type Parsed = (Arc<Module>, Vec<Diagnostic>);

/// Load `path` (a `.flt` file or a directory of them) and everything it imports.
pub fn load(fs: &dyn FileSystem, path: &Path) -> Program {
    load_with(fs, path, None)
}

/// [`load`], asking `parses` first for each file of the user's.
pub fn load_with(fs: &dyn FileSystem, path: &Path, parses: Option<&dyn Parses>) -> Program {
    let mut loader = Loader {
        fs,
        parses,
        program: Program {
            sources: SourceMap::default(),
            modules: Vec::new(),
            roots: Vec::new(),
            prelude: ModuleId(0),
            diagnostics: Vec::new(),
        },
        by_path: HashMap::new(),
        unparsed: Vec::new(),
    };
    // PRELUDE names an entry of STDLIB (both constants above, embedded in the binary),
    // and load_std fails only for a name that STDLIB lacks.
    #[allow(clippy::expect_used)]
    let prelude = loader
        .load_std(PRELUDE)
        .expect("the prelude is embedded in the binary");
    loader.program.prelude = prelude;

    let files = if fs.is_dir(path) {
        fs.flt_files(path)
    } else {
        vec![path.to_path_buf()]
    };
    if files.is_empty() {
        loader.program.diagnostics.push(no_flt_files(path));
    }
    for file in files {
        match loader.load_file(&file) {
            Some(id) => loader.program.roots.push(id),
            None => loader.program.diagnostics.push(
                Diagnostic::error(Code::E0100, format!("cannot read `{}`", file.display()))
                    .help("check that the path exists and is a readable .flt file"),
            ),
        }
    }
    loader.resolve_all_imports();
    loader.parse_loaded();
    let mut program = loader.program;
    program.roots.sort();
    program.roots.dedup();
    detect_cycles(&mut program);
    check_import_aliases(&mut program);
    program
}

/// E0100 for a directory without `.flt` files (`check`, `fmt`, …).
pub fn no_flt_files(path: &Path) -> Diagnostic {
    Diagnostic::error(
        Code::E0100,
        format!("no .flt files in `{}`", path.display()),
    )
    .help("pass a .flt file or a directory that contains some")
}

/// Add a file's bytes to `sources`. Text that is not UTF-8 is kept lossily, so that the
/// E0009 diagnostic returned with it can show the line, but it is not what the user
/// wrote and must not be parsed or rewritten.
pub fn add_source(
    sources: &mut SourceMap,
    name: String,
    path: PathBuf,
    bytes: Vec<u8>,
) -> (FileId, Option<Diagnostic>) {
    match String::from_utf8(bytes) {
        Ok(text) => (sources.add(name, path, text), None),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let file = sources.add(name, path, text);
            let diagnostic = Diagnostic::error(Code::E0009, "file is not valid UTF-8")
                // The lossy text holds U+FFFD (three bytes) where the invalid byte was.
                .at(
                    file,
                    Span::new(valid, valid + '\u{FFFD}'.len_utf8()),
                    "invalid byte here",
                )
                .help("save the file as UTF-8");
            (file, Some(diagnostic))
        }
    }
}

/// Each stdlib module's tree, parsed on first use and shared by every later analysis
/// in the process (each language-server edit, each benchmark run): the text is
/// embedded and never changes, and parsing the instance type catalog (168 KB) was most
/// of an analysis's fixed cost.
static PARSED_STD: [OnceLock<Option<Arc<Module>>>; STDLIB.len()] =
    [const { OnceLock::new() }; STDLIB.len()];

/// The tree of `STDLIB[index]`, whose text is file `file` of this program. A tree is
/// kept only when it parsed without problems: problems name their file, which differs
/// between programs (and an embedded stdlib with syntax errors is a bug, caught by the
/// tests, that should be reported every time). Threads that ask at once wait for one
/// parse, so every program shares the same tree.
fn parsed_std(index: usize, file: FileId) -> (Arc<Module>, Vec<Diagnostic>) {
    let kept = PARSED_STD[index].get_or_init(|| {
        let (ast, diagnostics) = parse(file, STDLIB[index].1);
        diagnostics.is_empty().then(|| Arc::new(ast))
    });
    match kept {
        Some(ast) => (ast.clone(), Vec::new()),
        None => {
            let (ast, diagnostics) = parse(file, STDLIB[index].1);
            (Arc::new(ast), diagnostics)
        }
    }
}

struct Loader<'a> {
    fs: &'a dyn FileSystem,
    parses: Option<&'a dyn Parses>,
    program: Program,
    by_path: HashMap<PathBuf, ModuleId>,
    /// Modules read but not parsed yet, with the length `program.diagnostics` had when
    /// each was read: files are parsed together, in parallel, and their problems
    /// are put where a parse at read time would have put them.
    unparsed: Vec<(ModuleId, usize)>,
}

impl Loader<'_> {
    fn push_module(
        &mut self,
        file: FileId,
        path: PathBuf,
        ast: Arc<Module>,
        is_std: bool,
    ) -> ModuleId {
        let id = ModuleId(self.program.modules.len() as u32);
        self.program.modules.push(LoadedModule {
            file,
            ast,
            is_std,
            imports: HashMap::new(),
        });
        self.by_path.insert(path, id);
        id
    }

    fn load_std(&mut self, name: &str) -> Option<ModuleId> {
        let path = PathBuf::from(format!("<stdlib>/{name}.flt"));
        if let Some(id) = self.by_path.get(&path) {
            return Some(*id);
        }
        let index = STDLIB.iter().position(|(n, _)| *n == name)?;
        let text = STDLIB[index].1;
        let file = self
            .program
            .sources
            .add(format!("{name}.flt"), path.clone(), text.to_string());
        let (ast, diagnostics) = parsed_std(index, file);
        self.program.diagnostics.extend(diagnostics);
        Some(self.push_module(file, path, ast, true))
    }

    /// Load one file from the file system (once). `None` when it cannot be read.
    fn load_file(&mut self, path: &Path) -> Option<ModuleId> {
        let path = normalize(path);
        if let Some(id) = self.by_path.get(&path) {
            return Some(*id);
        }
        let bytes = self.fs.read(&path)?;
        let name = path.display().to_string();
        let (file, not_utf8) = add_source(&mut self.program.sources, name, path.clone(), bytes);
        let ast = match not_utf8 {
            // Not parsed: the replacement characters are not what the user wrote.
            Some(diagnostic) => {
                self.program.diagnostics.push(diagnostic);
                Arc::default()
            }
            None => {
                let id = ModuleId(self.program.modules.len() as u32);
                self.unparsed.push((id, self.program.diagnostics.len()));
                Arc::default()
            }
        };
        Some(self.push_module(file, path, ast, false))
    }

    /// Parse every module read since the last call, on several threads.
    fn parse_loaded(&mut self) {
        if self.unparsed.is_empty() {
            return;
        }
        let unparsed = std::mem::take(&mut self.unparsed);
        let sources = &self.program.sources;
        let files: Vec<(FileId, &str)> = unparsed
            .iter()
            .map(|&(id, _)| {
                let file = self.program.modules[id.0 as usize].file;
                (file, sources.get(file).text.as_str())
            })
            .collect();
        let mut given: Vec<Option<Parsed>> = files
            .iter()
            .map(|&(file, text)| {
                let parses = self.parses?;
                parses.parse(file, &sources.get(file).path, text)
            })
            .collect();
        let rest: Vec<(FileId, &str)> = files
            .iter()
            .zip(&given)
            .filter(|(_, given)| given.is_none())
            .map(|(&file, _)| file)
            .collect();
        let mut parsed = parse_all(&rest).into_iter();
        for slot in &mut given {
            if slot.is_none() {
                *slot = parsed
                    .next()
                    .map(|(ast, diagnostics)| (Arc::new(ast), diagnostics));
            }
        }
        // Last first, so that each insertion point is still where it was recorded.
        for ((id, at), given) in unparsed.into_iter().zip(given).rev() {
            if let Some((ast, diagnostics)) = given {
                self.program.modules[id.0 as usize].ast = ast;
                self.program.diagnostics.splice(at..at, diagnostics);
            }
        }
    }

    /// Resolve imports breadth-first; newly loaded modules get their imports resolved too.
    fn resolve_all_imports(&mut self) {
        let mut next = 0;
        while next < self.program.modules.len() {
            let id = ModuleId(next as u32);
            next += 1;
            // Files read but not parsed (the roots, then each breadth-first wave of
            // imports) are parsed together when the first of them is needed. Modules
            // are read in id order, so the first unparsed one is the lowest id.
            if self.unparsed.first().is_some_and(|&(first, _)| first <= id) {
                self.parse_loaded();
            }
            let module = &self.program.modules[id.0 as usize];
            let file = module.file;
            let dir = self
                .program
                .sources
                .get(file)
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let imports: Vec<(usize, String, Span)> = module
                .ast
                .items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Item::Import(import) => Some((i, import.path.value.clone(), import.path.span)),
                    _ => None,
                })
                .collect();
            let is_std = module.is_std;
            for (index, target, span) in imports {
                let resolved = if let Some(std_name) = target.strip_prefix("std/") {
                    self.load_std(&format!("std/{std_name}"))
                        .map(|m| vec![m])
                        .ok_or_else(|| {
                            let names = STDLIB.iter().map(|(n, _)| *n);
                            let mut d = Diagnostic::error(
                                Code::E0109,
                                format!("there is no stdlib module `{target}`"),
                            )
                            .at(file, span, "not in the stdlib");
                            d = match did_you_mean(&target, names) {
                                Some(s) => d.help(s),
                                None => d.help(format!(
                                    "the stdlib has: {}",
                                    STDLIB
                                        .iter()
                                        .map(|(n, _)| *n)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )),
                            };
                            d
                        })
                } else if is_std {
                    Err(
                        Diagnostic::error(Code::E0101, "stdlib modules import only stdlib modules")
                            .at(file, span, "not a stdlib path"),
                    )
                } else if Path::new(&target).has_root() {
                    // A fleet must mean the same on every machine and in git history.
                    Err(Diagnostic::error(
                        Code::E0101,
                        format!("import `{target}` is an absolute path"),
                    )
                    .at(file, span, "absolute path")
                    .help("import relative to this file (`./pools.flt`, `../channels`) or from the stdlib (`std/aws`)"))
                } else {
                    self.load_relative(&dir, &target, file, span)
                };
                match resolved {
                    Ok(modules) => {
                        self.program.modules[id.0 as usize]
                            .imports
                            .insert(index, modules);
                    }
                    Err(d) => self.program.diagnostics.push(d),
                }
            }
        }
    }

    fn load_relative(
        &mut self,
        dir: &Path,
        target: &str,
        file: FileId,
        span: Span,
    ) -> Result<Vec<ModuleId>, Diagnostic> {
        let path = normalize(&dir.join(target));
        let candidates = [path.clone(), path.with_extension("flt")];
        for candidate in &candidates {
            if candidate.extension().is_some_and(|e| e == "flt")
                && let Some(id) = self.load_file(candidate)
            {
                return Ok(vec![id]);
            }
        }
        if self.fs.is_dir(&path) {
            let files = self.fs.flt_files(&path);
            if !files.is_empty() {
                return Ok(files.iter().filter_map(|f| self.load_file(f)).collect());
            }
        }
        Err(
            Diagnostic::error(Code::E0101, format!("cannot find module `{target}`"))
                .at(file, span, format!("looked for `{}`", candidates[1].display()))
                .help("relative imports are resolved from the importing file's directory; stdlib modules start with `std/`"),
        )
    }
}

/// E0114: an import alias names the imported module in its importing module only, so
/// it must not be taken twice there — by a second import or by a declaration (a `let`,
/// type, enum or channel). Either would silently hide the module (the checker's scope
/// keeps one name). Two declarations of one name are E0104, reported by the checker.
fn check_import_aliases(program: &mut Program) {
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Alias,
        Declaration,
    }
    let mut found = Vec::new();
    for module in &program.modules {
        let names = module.ast.items.iter().filter_map(|item| match item {
            Item::Import(import) => import.alias.as_ref().map(|a| (a, Kind::Alias)),
            Item::Let(l) => Some((&l.name, Kind::Declaration)),
            Item::Type(t) => Some((&t.name, Kind::Declaration)),
            Item::Alias(a) => Some((&a.name, Kind::Declaration)),
            Item::Enum(e) => Some((&e.name, Kind::Declaration)),
            Item::Channel(c) => Some((&c.name, Kind::Declaration)),
            Item::Cluster(_) => None,
        });
        // Each name's first occurrence; every later one clashes with it, except a
        // declaration after a declaration, which is E0104.
        let mut first: HashMap<&str, (Span, Kind)> = HashMap::new();
        for (ident, kind) in names {
            let clash = match first.get(ident.name.as_str()) {
                None => {
                    first.insert(&ident.name, (ident.span, kind));
                    None
                }
                Some(&(_, Kind::Declaration)) if kind == Kind::Declaration => None,
                Some(earlier) => Some(*earlier),
            };
            if let Some((first_span, first_kind)) = clash {
                let name = &ident.name;
                let (message, first_label, help) = match (first_kind, kind) {
                    (Kind::Alias, Kind::Alias) => (
                        format!("import alias `{name}` is declared twice in this module"),
                        "first declared here",
                        "give each import its own alias; the second would hide the first module",
                    ),
                    (Kind::Alias, Kind::Declaration) => (
                        format!("`{name}` is declared twice in this module"),
                        "first declared here, as an import alias",
                        "rename the declaration or the import alias; the declaration would hide the imported module",
                    ),
                    _ => (
                        format!("`{name}` is declared twice in this module"),
                        "first declared here",
                        "rename the import alias or the declaration; the declaration would hide the imported module",
                    ),
                };
                let label = match kind {
                    Kind::Alias if first_kind == Kind::Declaration => {
                        "declared again here, as an import alias"
                    }
                    _ => "declared again here",
                };
                found.push(
                    Diagnostic::error(Code::E0114, message)
                        .at(module.file, ident.span, label)
                        .also(module.file, first_span, first_label)
                        .help(help),
                );
            }
        }
    }
    program.diagnostics.extend(found);
}

/// Report every import cycle once, at the import that closes it.
fn detect_cycles(program: &mut Program) {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Active,
        Done,
    }
    let n = program.modules.len();
    let mut state = vec![State::New; n];
    let mut stack: Vec<ModuleId> = Vec::new();
    let mut found = Vec::new();

    fn visit(
        program: &Program,
        id: ModuleId,
        state: &mut [State],
        stack: &mut Vec<ModuleId>,
        found: &mut Vec<Diagnostic>,
    ) {
        state[id.0 as usize] = State::Active;
        stack.push(id);
        let module = program.module(id);
        let mut edges: Vec<(&usize, &Vec<ModuleId>)> = module.imports.iter().collect();
        edges.sort();
        for (item, targets) in edges {
            for &target in targets {
                match state[target.0 as usize] {
                    State::New => visit(program, target, state, stack, found),
                    State::Active => {
                        let start = stack.iter().position(|m| *m == target).unwrap_or(0);
                        let names: Vec<String> = stack[start..]
                            .iter()
                            .chain(std::iter::once(&target))
                            .map(|m| program.sources.get(program.module(*m).file).name.clone())
                            .collect();
                        let Item::Import(import) = &module.ast.items[*item] else {
                            continue;
                        };
                        found.push(
                            Diagnostic::error(Code::E0102, "import cycle")
                                .at(module.file, import.span, "this import closes the cycle")
                                .help(format!(
                                    "{}; move the shared declarations into a module that both import",
                                    names.join(" → ")
                                )),
                        );
                    }
                    State::Done => {}
                }
            }
        }
        stack.pop();
        state[id.0 as usize] = State::Done;
    }

    for i in 0..n {
        if state[i] == State::New {
            visit(
                program,
                ModuleId(i as u32),
                &mut state,
                &mut stack,
                &mut found,
            );
        }
    }
    program.diagnostics.extend(found);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemoryFs;

    fn program(text: &str) -> Program {
        let mut fs = MemoryFs::new();
        fs.insert("fleet/a.flt", text);
        load(&fs, Path::new("fleet"))
    }

    /// The second program reuses the first one's stdlib trees, and each still has the
    /// stdlib's files in its own source map, parsed without problems.
    #[test]
    fn the_stdlib_is_parsed_once_and_shared() {
        let first = program("let a = 1\n");
        let second = program("import \"std/catalog\"\nlet b = aws_regions\n");
        assert!(first.diagnostics.is_empty(), "{:?}", first.diagnostics);
        assert!(second.diagnostics.is_empty(), "{:?}", second.diagnostics);
        let std_trees = |p: &Program| -> Vec<(String, Arc<Module>)> {
            p.modules
                .iter()
                .filter(|m| m.is_std)
                .map(|m| (p.sources.get(m.file).name.clone(), m.ast.clone()))
                .collect()
        };
        let (first, second) = (std_trees(&first), std_trees(&second));
        assert_eq!(first.len(), STDLIB.len());
        assert_eq!(second.len(), STDLIB.len());
        for (name, tree) in &first {
            let (_, again) = second.iter().find(|(n, _)| n == name).unwrap();
            assert!(Arc::ptr_eq(tree, again), "{name} was parsed twice");
            assert!(!tree.items.is_empty(), "{name} has declarations");
        }
    }

    /// Files are parsed in parallel, but modules, files and problems come in the
    /// order of a sequential load: the roots by path, each root's parse problems;
    /// then, root by root, what its imports find (and their files' parse problems).
    #[test]
    fn a_parallel_load_keeps_the_sequential_order() {
        let mut fs = MemoryFs::new();
        for root in ["a", "b", "c", "d", "e", "f"] {
            fs.insert(
                format!("fleet/{root}.flt"),
                format!("import \"../lib/{root}\"\nimport \"./missing\"\nlet {root} = (1\n"),
            );
            fs.insert(format!("lib/{root}.flt"), format!("let {root}_lib = ]\n"));
        }
        let program = load(&fs, Path::new("fleet"));
        let found: Vec<(String, String)> = program
            .diagnostics
            .iter()
            .map(|d| {
                let file = d.primary.as_ref().unwrap().file;
                (program.sources.get(file).name.clone(), d.code.to_string())
            })
            .collect();
        let mut expected = Vec::new();
        for root in ["a", "b", "c", "d", "e", "f"] {
            expected.push((format!("fleet/{root}.flt"), "E0001".to_string()));
        }
        for root in ["a", "b", "c", "d", "e", "f"] {
            expected.push((format!("lib/{root}.flt"), "E0001".to_string()));
            expected.push((format!("fleet/{root}.flt"), "E0101".to_string()));
        }
        assert_eq!(found, expected);
        let names: Vec<&str> = program
            .modules
            .iter()
            .filter(|m| !m.is_std)
            .map(|m| program.sources.get(m.file).name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "fleet/a.flt",
                "fleet/b.flt",
                "fleet/c.flt",
                "fleet/d.flt",
                "fleet/e.flt",
                "fleet/f.flt",
                "lib/a.flt",
                "lib/b.flt",
                "lib/c.flt",
                "lib/d.flt",
                "lib/e.flt",
                "lib/f.flt",
            ]
        );
        // Each root keeps the declarations that parse: its two imports.
        for &root in &program.roots {
            assert_eq!(program.module(root).ast.items.len(), 2);
        }
    }
}
