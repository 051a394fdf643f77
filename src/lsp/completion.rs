//! Completion: field names not yet set in the block at the cursor, enum variants and
//! channels where a field expects them, `let` bindings, builtins, types and import paths.
//!
//! While a word is being typed the declaration around it usually does not parse, so the
//! block structure comes from a reparse of the text with the typed entry blanked out
//! (same length, so every offset stays valid).

use std::collections::BTreeSet;

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, InsertTextFormat,
    MarkupContent, MarkupKind, TextEdit,
};

use super::cursor::{Context, Frame, frames_at, record_of};
use super::describe::{field_markdown, show_data};
use super::workspace::range;
use crate::analysis::Analysis;
use crate::builtins::BUILTINS;
use crate::resolve::{ModuleId, STDLIB};
use crate::source::{FileId, FileSystem, SourceFile, normalize};
use crate::span::Span;
use crate::syntax::ast::{Entry, Item, Member, Module};
use crate::syntax::parse;
use crate::types::{Declarations, Def, RecordId, Resolution, Ty};

const BUILTIN_TYPES: [&str; 7] = [
    "String", "Int", "Float", "Bool", "Duration", "Quantity", "Secret",
];

pub(crate) struct Request<'a> {
    pub analysis: &'a Analysis,
    pub file: FileId,
    pub offset: usize,
    /// Lists directories for import paths (open buffers included).
    pub fs: &'a dyn FileSystem,
    /// Whether the client takes snippets (`$0` placeholders).
    pub snippets: bool,
}

/// Where in a line the cursor is, judged from the text before the word being typed.
enum Position {
    /// Start of a block entry: a field name goes here.
    Entry,
    /// After `field =`.
    Value(String),
    /// After `name:` in a type declaration or `let`.
    Type,
    /// Anywhere else an expression can be.
    Expression,
}

pub(crate) fn completion(request: &Request) -> Vec<CompletionItem> {
    let analysis = request.analysis;
    let source = analysis.program.sources.get(request.file);
    let Some(module) = analysis.program.module_of_file(request.file) else {
        return Vec::new();
    };
    let text = &source.text;
    let offset = request.offset.min(text.len());
    let line_start = source.lines.line_start(source.lines.line_of(offset));
    let before = &text[line_start..offset];
    let line = scan_line(before);
    if line.in_comment {
        return Vec::new();
    }
    if let Some(partial) = import_partial(before) {
        return import_items(request, source, offset, partial);
    }
    if line.in_string {
        return Vec::new();
    }
    let word_start = offset - before.len() + before.trim_end_matches(is_ident_char).len();
    let word_end =
        offset + text[offset..].len() - text[offset..].trim_start_matches(is_ident_char).len();
    let decls = &analysis.checked.decls;

    if text[..word_start].ends_with('.') {
        return member_items(analysis, module, request.file, &text[..word_start - 1]);
    }

    let segment_start = line_start + line.last_open_brace.map_or(0, |b| b + 1);
    let segment = &text[segment_start..word_start];
    let entry_start = segment_start + (segment.len() - segment.trim_start().len());
    // After `name =` or `name:` the line says what goes here. Otherwise the tree does:
    // outside every entry of a block is a new entry (`update { max_surge = 1 | }`).
    let (ast, mut position) = match classify(segment) {
        textual @ (Position::Value(_) | Position::Type) => {
            (reparse(request.file, text, entry_start, word_end), textual)
        }
        textual => {
            let (ast, problems) = parse(request.file, &blank(text, word_start..word_end));
            if problems.is_empty() {
                (ast, Position::Entry)
            } else {
                // Also where the word names an existing entry (`|min_size = 1`,
                // `min_|size = 1`): that entry without its name does not parse, nor the
                // block around it, so the whole entry is blanked to find the block.
                (reparse(request.file, text, entry_start, word_end), textual)
            }
        }
    };
    let context = Context {
        decls,
        checked: &analysis.checked,
        file: request.file,
        module: Some(module),
        fleet: analysis.fleet.as_ref(),
    };
    let frames = frames_at(&context, &ast, offset);
    let frame = frames.last().filter(|f| f.is_inside(offset));
    // In the value of an entry (`max_size = 1|`, a list over several lines): an expression.
    let mut expected = None;
    if let (Position::Entry, Some(frame)) = (&position, frame) {
        for entry in &frame.block.entries {
            if let Entry::Field { name, value, .. } = entry
                && (name.span.end as usize) < offset
                && offset <= value.span.end as usize
            {
                position = Position::Expression;
                expected = frame
                    .record
                    .and_then(|r| decls.record(r).field(&name.name))
                    .map(|(_, f)| f.ty.required().clone());
            }
        }
    }
    let type_item = enclosing_type_decl(decls, &ast, module, offset);
    let items = Items {
        analysis,
        module,
        snippets: request.snippets,
    };
    match position {
        Position::Entry => match (frame, type_item) {
            (Some(frame), _) => match frame.record {
                Some(record) => items.fields(frame, record),
                None => Vec::new(),
            },
            (None, Some(_)) if in_member_expression(&ast, offset) => {
                items.expression(&frames, type_item)
            }
            (None, Some(_)) => Vec::new(),
            (None, None) if ast.items.iter().any(|i| i.span().contains(offset)) => {
                items.expression(&frames, type_item)
            }
            (None, None) => items.keywords(),
        },
        Position::Value(field) => {
            let expected = frame
                .and_then(|f| f.record)
                .and_then(|r| decls.record(r).field(&field))
                .map(|(_, f)| f.ty.clone());
            let mut out = expected.map(|t| items.values(&t)).unwrap_or_default();
            out.extend(items.expression(&frames, type_item));
            out
        }
        Position::Expression => {
            let mut out = expected.map(|t| items.values(&t)).unwrap_or_default();
            out.extend(items.expression(&frames, type_item));
            out
        }
        Position::Type => items.types(),
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The syntax tree of `text` with the entry being typed blanked out from `from`: up to
/// the end of the word, or if that does not parse (`f(|)`), up to the end of the line.
fn reparse(file: FileId, text: &str, from: usize, word_end: usize) -> Module {
    let (ast, problems) = parse(file, &blank(text, from..word_end));
    if problems.is_empty() {
        return ast;
    }
    let line_end = text[word_end..]
        .find('\n')
        .map_or(text.len(), |i| word_end + i);
    let (whole_line, problems) = parse(file, &blank(text, from..line_end));
    if problems.is_empty() { whole_line } else { ast }
}

/// `text` with `range` replaced by spaces (same byte length).
fn blank(text: &str, range: std::ops::Range<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..range.start]);
    out.extend(std::iter::repeat_n(' ', range.end - range.start));
    out.push_str(&text[range.end..]);
    out
}

struct LineState {
    in_string: bool,
    in_comment: bool,
    /// Byte offset of the last `{` outside strings that is still open on this line.
    last_open_brace: Option<usize>,
}

/// Follow strings (with `${…}` interpolation) and comments up to the cursor.
fn scan_line(before: &str) -> LineState {
    enum Mode {
        Code { braces: Vec<usize> },
        Str,
    }
    let mut stack = vec![Mode::Code { braces: Vec::new() }];
    let mut chars = before.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|(_, n)| *n);
        match stack.last_mut() {
            Some(Mode::Str) => match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    stack.pop();
                }
                '$' if next == Some('{') => {
                    chars.next();
                    stack.push(Mode::Code { braces: Vec::new() });
                }
                _ => {}
            },
            Some(Mode::Code { braces }) => match c {
                '"' => stack.push(Mode::Str),
                '/' if next == Some('/') => {
                    return LineState {
                        in_string: false,
                        in_comment: true,
                        last_open_brace: None,
                    };
                }
                '{' => braces.push(i),
                '}' => {
                    let closes_interpolation = braces.pop().is_none() && stack.len() > 1;
                    if closes_interpolation {
                        stack.pop();
                    }
                }
                _ => {}
            },
            None => break,
        }
    }
    let last_open_brace = match stack.as_slice() {
        [Mode::Code { braces }] => braces.last().copied(),
        _ => None,
    };
    LineState {
        in_string: matches!(stack.last(), Some(Mode::Str)),
        in_comment: false,
        last_open_brace,
    }
}

/// The path typed so far in `import "…`, if the cursor is in one.
fn import_partial(before: &str) -> Option<&str> {
    let rest = before.trim_start().strip_prefix("import")?;
    let rest = rest.strip_prefix(char::is_whitespace)?.trim_start();
    let partial = rest.strip_prefix('"')?;
    (!partial.contains('"')).then_some(partial)
}

fn classify(segment: &str) -> Position {
    let trimmed = segment.trim();
    if trimmed.is_empty() {
        return Position::Entry;
    }
    let name_then = |s: &str| -> Option<(String, char)> {
        let name: String = s.chars().take_while(|c| is_ident_char(*c)).collect();
        let rest = s[name.len()..].trim_start();
        let mark = rest.chars().next()?;
        (!name.is_empty() && rest.len() == mark.len_utf8()).then_some((name, mark))
    };
    let declared = trimmed
        .strip_prefix("let ")
        .map(str::trim_start)
        .unwrap_or(trimmed);
    match name_then(declared) {
        Some((_, ':')) => Position::Type,
        Some((name, '=')) if declared.len() == trimmed.len() => Position::Value(name),
        _ => Position::Expression,
    }
}

/// The record whose `type` declaration contains `offset`, for `cluster` and own fields
/// in defaults and checks.
fn enclosing_type_decl(
    decls: &Declarations,
    ast: &Module,
    module: ModuleId,
    offset: usize,
) -> Option<RecordId> {
    let item = ast
        .items
        .iter()
        .position(|i| matches!(i, Item::Type(_)) && i.span().contains(offset))?;
    decls
        .records
        .iter()
        .position(|r| r.site.module == module && r.site.item == item)
        .map(|i| RecordId(i as u32))
}

/// Whether `offset` is in a field default or a `check` of a type declaration (not on a
/// field's name, where a new name is being written).
fn in_member_expression(ast: &Module, offset: usize) -> bool {
    ast.items.iter().any(|item| match item {
        Item::Type(t) => t.members.iter().any(|m| match m {
            Member::Field(f) => f.default.as_ref().is_some_and(|d| d.span.contains(offset)),
            Member::Check(c) => {
                c.span.contains(offset) && offset > c.span.start as usize + "check".len()
            }
        }),
        _ => false,
    })
}

/// After `NAME.`: enum variants, a module alias's names, or the fields of a record value.
fn member_items(
    analysis: &Analysis,
    module: ModuleId,
    file: FileId,
    before_dot: &str,
) -> Vec<CompletionItem> {
    let decls = &analysis.checked.decls;
    let name = &before_dot[before_dot.trim_end_matches(is_ident_char).len()..];
    if name.is_empty() {
        return Vec::new();
    }
    let items = Items {
        analysis,
        module,
        snippets: false,
    };
    match decls.lookup(module, name) {
        Some(Def::Enum(e)) => return items.variants(*e, "0"),
        Some(Def::Alias(targets)) => {
            return targets
                .iter()
                .flat_map(|m| items.scope_items(*m, true))
                .collect();
        }
        _ => {}
    }
    // A record-typed name the checker resolved (when the text around it parsed).
    let end = before_dot.len();
    let span = Span::new(end - name.len(), end);
    let record = match analysis.checked.resolution(file, span) {
        Some(Resolution::Field { record, field, .. }) => {
            record_of(decls.record(*record).fields[*field].ty.required())
        }
        Some(Resolution::Channel(_)) => decls.channel_type,
        Some(Resolution::ClusterContext) => decls.cluster_type,
        Some(Resolution::Let(m, i)) => analysis
            .checked
            .let_types
            .get(&(*m, *i))
            .and_then(|t| record_of(t.required())),
        _ => None,
    };
    let Some(record) = record else {
        return Vec::new();
    };
    decls
        .record(record)
        .fields
        .iter()
        .enumerate()
        .map(|(index, f)| CompletionItem {
            label: f.name.clone(),
            kind: Some(CompletionItemKind::FIELD),
            detail: Some(decls.show(&f.ty).to_string()),
            documentation: Some(markdown(field_markdown(analysis, record, index))),
            sort_text: Some(format!("0{index:03}")),
            ..Default::default()
        })
        .collect()
}

fn import_items(
    request: &Request,
    source: &SourceFile,
    offset: usize,
    partial: &str,
) -> Vec<CompletionItem> {
    let (dir, name) = partial
        .rsplit_once('/')
        .map_or(("", partial), |(d, n)| (d, n));
    let edit = |start: usize, new_text: String| {
        Some(CompletionTextEdit::Edit(TextEdit {
            range: range(source, Span::new(start, offset)),
            new_text,
        }))
    };
    let mut items = Vec::new();
    if !partial.contains('/') || partial.starts_with("std/") {
        for (module, _) in STDLIB {
            items.push(CompletionItem {
                label: module.to_string(),
                kind: Some(CompletionItemKind::MODULE),
                detail: Some("stdlib".into()),
                text_edit: edit(offset - partial.len(), module.to_string()),
                ..Default::default()
            });
        }
    }
    if dir.starts_with("std") {
        return items;
    }
    let Some(base) = source.path.parent().map(|p| normalize(&p.join(dir))) else {
        return items;
    };
    let mut entries = BTreeSet::new();
    for path in request.fs.flt_files(&base) {
        if path == source.path {
            continue;
        }
        let Ok(relative) = path.strip_prefix(&base) else {
            continue;
        };
        let mut components = relative.components();
        let first = components
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        if let Some(first) = first {
            entries.insert((components.next().is_some(), first));
        }
    }
    for (is_dir, entry) in entries {
        let (label, kind) = if is_dir {
            (format!("{entry}/"), CompletionItemKind::FOLDER)
        } else {
            (entry, CompletionItemKind::FILE)
        };
        items.push(CompletionItem {
            text_edit: edit(offset - name.len(), label.clone()),
            label,
            kind: Some(kind),
            ..Default::default()
        });
    }
    if dir.is_empty() {
        for relative in ["./", "../"] {
            items.push(CompletionItem {
                label: relative.into(),
                kind: Some(CompletionItemKind::FOLDER),
                text_edit: edit(offset - partial.len(), relative.into()),
                ..Default::default()
            });
        }
    }
    items
}

struct Items<'a> {
    analysis: &'a Analysis,
    module: ModuleId,
    snippets: bool,
}

impl Items<'_> {
    /// Fields the block can still set, required ones first; repeated blocks always.
    fn fields(&self, frame: &Frame, record: RecordId) -> Vec<CompletionItem> {
        let decls = &self.analysis.checked.decls;
        let def = decls.record(record);
        let set: Vec<&str> = frame
            .block
            .entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Field { name, .. } => Some(name.name.as_str()),
                Entry::Block { name, .. } if def.block_field(&name.name).is_none() => {
                    Some(name.name.as_str())
                }
                _ => None,
            })
            .collect();
        let mut items = Vec::new();
        for (index, field) in def.fields.iter().enumerate() {
            if field.is_label {
                continue;
            }
            let mut doc = field_markdown(self.analysis, record, index);
            let order = format!("{}{index:03}", if field.is_required() { 0 } else { 1 });
            if let Some(block) = &field.block_name {
                let labelled = match &field.ty {
                    Ty::List(element) => {
                        record_of(element).is_some_and(|r| decls.record(r).label_field().is_some())
                    }
                    _ => false,
                };
                let snippet = if labelled {
                    format!("{block} \"$1\" {{\n\t$0\n}}")
                } else {
                    format!("{block} {{\n\t$0\n}}")
                };
                items.push(self.item(
                    block,
                    CompletionItemKind::STRUCT,
                    decls.show(&field.ty).to_string(),
                    doc,
                    order,
                    snippet,
                ));
                continue;
            }
            if set.contains(&field.name.as_str()) {
                continue;
            }
            if let Some(value) = frame.value.and_then(|v| v.get(&field.name)) {
                doc.push_str(&format!(
                    "\n\nValue here when not set: `{}`",
                    show_data(value)
                ));
            }
            let name = &field.name;
            let snippet = match field.ty.required() {
                Ty::Record(r) if Some(*r) != decls.channel_type => format!("{name} {{\n\t$0\n}}"),
                Ty::Enum(e) => {
                    let variants: Vec<&str> = decls
                        .enum_def(*e)
                        .variants
                        .iter()
                        .map(|v| v.name.as_str())
                        .collect();
                    format!("{name} = ${{1|{}|}}", variants.join(","))
                }
                Ty::String => format!("{name} = \"$1\""),
                _ => format!("{name} = $0"),
            };
            items.push(self.item(
                name,
                CompletionItemKind::FIELD,
                decls.show(&field.ty).to_string(),
                doc,
                order,
                snippet,
            ));
        }
        items
    }

    fn item(
        &self,
        label: &str,
        kind: CompletionItemKind,
        detail: String,
        doc: String,
        order: String,
        snippet: String,
    ) -> CompletionItem {
        let (insert_text, format) = if self.snippets {
            (snippet, InsertTextFormat::SNIPPET)
        } else {
            (label.to_string(), InsertTextFormat::PLAIN_TEXT)
        };
        CompletionItem {
            label: label.to_string(),
            kind: Some(kind),
            detail: Some(detail),
            documentation: Some(markdown(doc)),
            sort_text: Some(order),
            insert_text: Some(insert_text),
            insert_text_format: Some(format),
            ..Default::default()
        }
    }

    /// What fits a field of type `ty`: variants, channels, booleans, `null`, a record literal.
    fn values(&self, ty: &Ty) -> Vec<CompletionItem> {
        let decls = &self.analysis.checked.decls;
        let mut items = Vec::new();
        if matches!(ty, Ty::Optional(_)) {
            items.push(keyword("null", "0"));
        }
        match ty.required() {
            Ty::Enum(e) => items.extend(self.variants(*e, "0")),
            Ty::Bool => items.extend([keyword("true", "0"), keyword("false", "0")]),
            Ty::Record(r) if Some(*r) == decls.channel_type => {
                items.extend(
                    self.scope_items(self.module, false)
                        .into_iter()
                        .filter(|i| i.kind == Some(CompletionItemKind::CONSTANT))
                        .map(|mut i| {
                            i.sort_text = Some("0".into());
                            i
                        }),
                );
            }
            Ty::Record(r) => {
                let def = decls.record(*r);
                items.push(CompletionItem {
                    label: def.name.clone(),
                    kind: Some(CompletionItemKind::STRUCT),
                    documentation: def.doc.clone().map(markdown),
                    sort_text: Some("0".into()),
                    ..Default::default()
                });
            }
            _ => {}
        }
        items
    }

    fn variants(&self, e: crate::types::EnumId, order: &str) -> Vec<CompletionItem> {
        let def = self.analysis.checked.decls.enum_def(e);
        def.variants
            .iter()
            .map(|v| CompletionItem {
                label: v.name.clone(),
                kind: Some(CompletionItemKind::ENUM_MEMBER),
                detail: Some(def.name.clone()),
                documentation: v.doc.clone().map(markdown),
                sort_text: Some(order.to_string()),
                ..Default::default()
            })
            .collect()
    }

    /// Names usable in an expression: fields of the enclosing blocks, `let`s, channels,
    /// enums, module aliases, builtins.
    fn expression(&self, frames: &[Frame], type_decl: Option<RecordId>) -> Vec<CompletionItem> {
        let decls = &self.analysis.checked.decls;
        let mut items = Vec::new();
        let mut seen = BTreeSet::new();
        let records = frames
            .iter()
            .rev()
            .filter_map(|f| f.record)
            .chain(type_decl);
        for record in records {
            for (index, field) in decls.record(record).fields.iter().enumerate() {
                if seen.insert(field.name.clone()) {
                    items.push(CompletionItem {
                        label: field.name.clone(),
                        kind: Some(CompletionItemKind::FIELD),
                        detail: Some(decls.show(&field.ty).to_string()),
                        documentation: Some(markdown(field_markdown(self.analysis, record, index))),
                        sort_text: Some("1".into()),
                        ..Default::default()
                    });
                }
            }
        }
        if type_decl.is_some() {
            items.push(CompletionItem {
                label: "cluster".into(),
                kind: Some(CompletionItemKind::VARIABLE),
                detail: Some("Cluster".into()),
                documentation: Some(markdown("The cluster the record belongs to.".into())),
                sort_text: Some("1".into()),
                ..Default::default()
            });
        }
        items.extend(self.scope_items(self.module, false));
        for builtin in BUILTINS {
            items.push(CompletionItem {
                label: builtin.name.to_string(),
                kind: Some(CompletionItemKind::FUNCTION),
                detail: Some(builtin.signature.to_string()),
                documentation: Some(markdown(builtin.doc.to_string())),
                sort_text: Some("3".into()),
                insert_text: self.snippets.then(|| format!("{}($0)", builtin.name)),
                insert_text_format: self.snippets.then_some(InsertTextFormat::SNIPPET),
                ..Default::default()
            });
        }
        items.extend(["true", "false", "null", "if", "for"].map(|k| keyword(k, "4")));
        items
    }

    /// A module's names. `own` limits them to what the module itself declares (for `alias.`).
    fn scope_items(&self, module: ModuleId, own: bool) -> Vec<CompletionItem> {
        let decls = &self.analysis.checked.decls;
        let Some(scope) = decls.scopes.get(&module) else {
            return Vec::new();
        };
        let mut names: Vec<(&String, &Def)> = scope.iter().collect();
        names.sort_by_key(|(n, _)| n.as_str());
        names
            .into_iter()
            .filter(|(_, def)| !own || self.declared_in(def, module))
            .filter_map(|(name, def)| {
                let (kind, detail, doc) = match def {
                    Def::Let(m, i) => (
                        CompletionItemKind::VARIABLE,
                        self.analysis
                            .checked
                            .let_types
                            .get(&(*m, *i))
                            .map(|t| decls.show(t).to_string()),
                        self.let_doc(*m, *i),
                    ),
                    Def::Channel(_) => (
                        CompletionItemKind::CONSTANT,
                        Some("channel".to_string()),
                        None,
                    ),
                    Def::Enum(e) => (
                        CompletionItemKind::ENUM,
                        Some("enum".to_string()),
                        decls.enum_def(*e).doc.clone(),
                    ),
                    Def::Record(r) if own => (
                        CompletionItemKind::STRUCT,
                        Some("type".to_string()),
                        decls.record(*r).doc.clone(),
                    ),
                    Def::TypeAlias(a) if own => (
                        CompletionItemKind::TYPE_PARAMETER,
                        Some("type".to_string()),
                        decls.aliases[*a].doc.clone(),
                    ),
                    Def::Alias(_) => (CompletionItemKind::MODULE, Some("module".to_string()), None),
                    Def::Record(_) | Def::TypeAlias(_) => return None,
                };
                Some(CompletionItem {
                    label: name.clone(),
                    kind: Some(kind),
                    detail,
                    documentation: doc.map(markdown),
                    sort_text: Some("2".into()),
                    ..Default::default()
                })
            })
            .collect()
    }

    fn declared_in(&self, def: &Def, module: ModuleId) -> bool {
        let decls = &self.analysis.checked.decls;
        match def {
            Def::Let(m, _) => *m == module,
            Def::Record(r) => decls.record(*r).site.module == module,
            Def::Enum(e) => decls.enum_def(*e).site.module == module,
            Def::Channel(c) => decls.channel(*c).site.module == module,
            Def::TypeAlias(a) => decls.aliases[*a].site.module == module,
            Def::Alias(_) => false,
        }
    }

    fn let_doc(&self, module: ModuleId, item: usize) -> Option<String> {
        match self.analysis.program.module(module).ast.items.get(item)? {
            Item::Let(l) => l.doc.clone(),
            _ => None,
        }
    }

    fn types(&self) -> Vec<CompletionItem> {
        let decls = &self.analysis.checked.decls;
        let mut items: Vec<CompletionItem> = BUILTIN_TYPES
            .iter()
            .map(|name| CompletionItem {
                label: name.to_string(),
                kind: Some(CompletionItemKind::TYPE_PARAMETER),
                sort_text: Some("1".into()),
                ..Default::default()
            })
            .collect();
        if let Some(scope) = decls.scopes.get(&self.module) {
            for (name, def) in scope {
                let (kind, doc) = match def {
                    Def::Record(r) => (CompletionItemKind::STRUCT, decls.record(*r).doc.clone()),
                    Def::Enum(e) => (CompletionItemKind::ENUM, decls.enum_def(*e).doc.clone()),
                    Def::TypeAlias(a) => (
                        CompletionItemKind::TYPE_PARAMETER,
                        decls.aliases[*a].doc.clone(),
                    ),
                    Def::Alias(_) => (CompletionItemKind::MODULE, None),
                    _ => continue,
                };
                items.push(CompletionItem {
                    label: name.clone(),
                    kind: Some(kind),
                    documentation: doc.map(markdown),
                    sort_text: Some("0".into()),
                    ..Default::default()
                });
            }
        }
        items
    }

    /// Top-level declarations.
    fn keywords(&self) -> Vec<CompletionItem> {
        let snippets = [
            ("import", "import \"$0\""),
            ("let", "let ${1:name} = $0"),
            (
                "channel",
                "channel ${1:name} {\n\tkubernetes_version = \"$2\"\n\tconfig_ref = \"$3\"\n}",
            ),
            ("cluster", "cluster \"${1:id}\" {\n\t$0\n}"),
            ("type", "type ${1:Name} {\n\t$0\n}"),
            ("enum", "enum ${1:Name} {\n\t$0\n}"),
        ];
        snippets
            .iter()
            .map(|(word, snippet)| CompletionItem {
                label: word.to_string(),
                kind: Some(CompletionItemKind::KEYWORD),
                insert_text: self.snippets.then(|| snippet.to_string()),
                insert_text_format: self.snippets.then_some(InsertTextFormat::SNIPPET),
                ..Default::default()
            })
            .collect()
    }
}

fn keyword(word: &str, order: &str) -> CompletionItem {
    CompletionItem {
        label: word.to_string(),
        kind: Some(CompletionItemKind::KEYWORD),
        sort_text: Some(order.to_string()),
        ..Default::default()
    }
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_by_what_precedes_the_word() {
        assert!(matches!(classify("  "), Position::Entry));
        assert!(matches!(classify("  max_size = "), Position::Value(f) if f == "max_size"));
        assert!(matches!(classify("  size: "), Position::Type));
        assert!(matches!(classify("let x: "), Position::Type));
        assert!(matches!(classify("let x = "), Position::Expression));
        assert!(matches!(classify("  a = b + "), Position::Expression));
        assert!(matches!(classify("  a == "), Position::Expression));
    }

    #[test]
    fn strings_comments_and_braces_are_followed() {
        let line = scan_line(r#"  update { max_surge = "${ {a}"#);
        assert!(!line.in_string && !line.in_comment);
        assert_eq!(line.last_open_brace, None);
        assert!(scan_line(r#"  x = "a\"b"#).in_string);
        assert!(scan_line(r#"  x = "//" // y"#).in_comment);
        assert_eq!(scan_line("  update { ").last_open_brace, Some(9));
        assert_eq!(import_partial(r#"import "./sha"#), Some("./sha"));
        assert_eq!(import_partial(r#"important = "x"#), None);
    }
}
