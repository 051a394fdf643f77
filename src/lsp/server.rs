//! The server loop: lifecycle, document sync, analysis scheduling and request dispatch.
//!
//! Changes are not analysed one by one: the loop applies every message already queued
//! and analyses once the queue is empty (or a request needs current results), so a burst
//! of keystrokes costs one analysis.

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};

use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::{
    CompletionOptions, CompletionParams, DidChangeTextDocumentParams, DidChangeWatchedFilesParams,
    DidChangeWorkspaceFoldersParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    DocumentFormattingParams, DocumentSymbolParams, DocumentSymbolResponse, GotoDefinitionParams,
    HoverParams, HoverProviderCapability, InitializeParams, InitializeResult, MessageType, OneOf,
    PositionEncodingKind, PublishDiagnosticsParams, ServerCapabilities, ServerInfo,
    ShowMessageParams, TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    Uri, WorkspaceFoldersServerCapabilities, WorkspaceServerCapabilities,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::completion::{Request as CompletionRequest, completion};
use super::definition::definition;
use super::diagnostics::{FileDiagnostics, collect};
use super::documents::{Document, Documents, OverlayFs};
use super::formatting::format_edits;
use super::hover::hover;
use super::paths::{StdlibCache, path_to_uri, uri_to_path};
use super::scan::ScanLimits;
use super::symbols::document_symbols;
use super::transport::{Incoming, Output, spawn_reader};
use super::workspace::{Stale, Workspace, offset};
use crate::source::{DiskFs, FileId, FileSystem, SourceFile};
use crate::span::LineIndex;
use crate::syntax::parse;

/// Serve one client on `input`/`output` until `exit`; returns the process exit code.
pub(crate) fn run(input: impl Read + Send + 'static, output: impl Write) -> i32 {
    let incoming = spawn_reader(input);
    let mut server = Server {
        out: Output::new(output),
        documents: Documents::default(),
        workspace: Workspace::default(),
        stdlib: StdlibCache::new(),
        published: FileDiagnostics::new(),
        stale: Stale::default(),
        state: State::Uninitialized,
        snippets: false,
    };
    server.serve(&incoming)
}

#[derive(PartialEq)]
enum State {
    Uninitialized,
    Running,
    ShutDown,
}

struct Server<W: Write> {
    out: Output<W>,
    documents: Documents,
    workspace: Workspace,
    stdlib: StdlibCache,
    /// What was last published, by file, so only changes are sent again.
    published: FileDiagnostics,
    /// Changes not analysed yet.
    stale: Stale,
    state: State,
    /// Whether the client takes snippet completions.
    snippets: bool,
}

/// A request that cannot be answered, as the error response says.
struct Failure {
    code: ErrorCode,
    message: String,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

type Answer = Result<Value, Failure>;

impl<W: Write> Server<W> {
    fn serve(&mut self, incoming: &Receiver<Incoming>) -> i32 {
        loop {
            let next = if self.stale.is_empty() {
                incoming.recv().ok()
            } else {
                match incoming.try_recv() {
                    Ok(next) => Some(next),
                    Err(TryRecvError::Empty) => {
                        self.refresh();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => None,
                }
            };
            // End of input without `exit`: a client that died.
            let Some(next) = next else {
                return i32::from(self.state != State::ShutDown);
            };
            if let Some(code) = self.handle(next) {
                return code;
            }
            if let Some(e) = self.out.failure() {
                eprintln!("flotilla lsp: cannot write to the client: {e}");
                return 1;
            }
        }
    }

    /// Handle one message; `Some(code)` to exit.
    fn handle(&mut self, incoming: Incoming) -> Option<i32> {
        match incoming {
            Incoming::Malformed { id, code, message } => {
                eprintln!("flotilla lsp: {message}");
                self.out.send_error(id, code, &message);
            }
            Incoming::Message(Message::Request(request)) => self.request(request),
            Incoming::Message(Message::Notification(notification)) => {
                if notification.method == "exit" {
                    return Some(i32::from(self.state != State::ShutDown));
                }
                let method = notification.method.clone();
                // A bug in one handler must not take the editor's server down.
                if catch_unwind(AssertUnwindSafe(|| self.notification(notification))).is_err() {
                    eprintln!("flotilla lsp: internal error while handling `{method}`");
                }
            }
            Incoming::Message(Message::Response(_)) => {}
        }
        None
    }

    fn request(&mut self, request: Request) {
        let id = request.id.clone();
        let answer = match self.state {
            State::Uninitialized if request.method != "initialize" => Err(Failure::new(
                ErrorCode::ServerNotInitialized,
                "the first request must be `initialize`",
            )),
            State::ShutDown => Err(Failure::new(
                ErrorCode::InvalidRequest,
                "the server is shut down",
            )),
            _ => catch_unwind(AssertUnwindSafe(|| self.dispatch(request))).unwrap_or_else(|_| {
                Err(Failure::new(
                    ErrorCode::InternalError,
                    "internal error; the server's log (stderr) has details",
                ))
            }),
        };
        self.respond(id, answer);
    }

    fn respond(&mut self, id: RequestId, answer: Answer) {
        let response = match answer {
            Ok(value) => Response::new_ok(id, value),
            Err(failure) => Response::new_err(id, failure.code as i32, failure.message),
        };
        self.out.send(response);
    }

    fn dispatch(&mut self, request: Request) -> Answer {
        match request.method.as_str() {
            "initialize" => self.initialize(params(request.params)?),
            "shutdown" => {
                self.state = State::ShutDown;
                Ok(Value::Null)
            }
            "textDocument/hover" => {
                let p: HoverParams = params(request.params)?;
                let at = p.text_document_position_params;
                let Some(path) = self.analysed(&at.text_document.uri)? else {
                    return Ok(Value::Null);
                };
                let Some((analysis, file)) = self.workspace.locate(&path) else {
                    return Ok(Value::Null);
                };
                let offset = offset(analysis.program.sources.get(file), at.position);
                to_json(hover(analysis, file, offset))
            }
            "textDocument/completion" => {
                let p: CompletionParams = params(request.params)?;
                let at = p.text_document_position;
                let Some(path) = self.analysed(&at.text_document.uri)? else {
                    return Ok(Value::Null);
                };
                let Some((analysis, file)) = self.workspace.locate(&path) else {
                    return Ok(Value::Null);
                };
                let fs = OverlayFs::new(&self.documents, self.workspace.limits());
                let request = CompletionRequest {
                    analysis,
                    file,
                    offset: offset(analysis.program.sources.get(file), at.position),
                    fs: &fs,
                    snippets: self.snippets,
                };
                to_json(completion(&request))
            }
            "textDocument/definition" => {
                let p: GotoDefinitionParams = params(request.params)?;
                let at = p.text_document_position_params;
                let Some(path) = self.analysed(&at.text_document.uri)? else {
                    return Ok(Value::Null);
                };
                let Some((analysis, file)) = self.workspace.locate(&path) else {
                    return Ok(Value::Null);
                };
                let offset = offset(analysis.program.sources.get(file), at.position);
                to_json(definition(analysis, file, offset, &mut self.stdlib))
            }
            "textDocument/formatting" => {
                let p: DocumentFormattingParams = params(request.params)?;
                let path = self.path(&p.text_document.uri)?;
                let text = self.text(&path)?;
                to_json(format_edits(&text))
            }
            "textDocument/documentSymbol" => {
                let p: DocumentSymbolParams = params(request.params)?;
                let Some(path) = self.analysed(&p.text_document.uri)? else {
                    return Ok(Value::Null);
                };
                let symbols = match self.workspace.locate(&path) {
                    Some((analysis, file)) => {
                        let program = &analysis.program;
                        let module = program.module_of_file(file).map(|m| &program.module(m).ast);
                        module.map(|ast| document_symbols(program.sources.get(file), ast))
                    }
                    // A file outside every analysis (not `.flt`): outline it on its own.
                    None => {
                        let text = self.text(&path)?;
                        let (ast, _) = parse(FileId(0), &text);
                        let source = SourceFile {
                            name: path.display().to_string(),
                            path,
                            lines: LineIndex::new(&text),
                            text,
                        };
                        Some(document_symbols(&source, &ast))
                    }
                };
                to_json(symbols.map(DocumentSymbolResponse::Nested))
            }
            method => Err(Failure::new(
                ErrorCode::MethodNotFound,
                format!("`{method}` is not supported"),
            )),
        }
    }

    fn initialize(&mut self, params: InitializeParams) -> Answer {
        let mut folders: Vec<PathBuf> = params
            .workspace_folders
            .iter()
            .flatten()
            .filter_map(|f| uri_to_path(&f.uri).ok())
            .collect();
        #[allow(deprecated)] // Older clients send only `rootUri`.
        if folders.is_empty() {
            folders.extend(params.root_uri.as_ref().and_then(|u| uri_to_path(u).ok()));
        }
        self.snippets = params
            .capabilities
            .text_document
            .as_ref()
            .and_then(|t| t.completion.as_ref())
            .and_then(|c| c.completion_item.as_ref())
            .and_then(|i| i.snippet_support)
            .unwrap_or(false);
        self.workspace
            .set_limits(scan_limits(params.initialization_options.as_ref())?);
        if !folders.is_empty() {
            self.workspace.set_folders(folders);
            self.stale.everything();
        }
        self.state = State::Running;
        to_json(InitializeResult {
            capabilities: capabilities(),
            server_info: Some(ServerInfo {
                name: "flotilla".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
        })
    }

    fn notification(&mut self, notification: Notification) {
        if self.state != State::Running {
            return;
        }
        let method = notification.method.clone();
        if let Err(problem) = self.apply(notification) {
            eprintln!("flotilla lsp: {method}: {problem}");
        }
    }

    fn apply(&mut self, notification: Notification) -> Result<(), String> {
        let params = notification.params;
        match notification.method.as_str() {
            "textDocument/didOpen" => {
                let p: DidOpenTextDocumentParams = from_params(params)?;
                let path = uri_to_path(&p.text_document.uri)?;
                self.documents.open(
                    path.clone(),
                    Document {
                        uri: p.text_document.uri,
                        version: p.text_document.version,
                        text: p.text_document.text,
                    },
                );
                self.stale.path(path);
            }
            "textDocument/didChange" => {
                let p: DidChangeTextDocumentParams = from_params(params)?;
                let path = uri_to_path(&p.text_document.uri)?;
                self.stale.path(path.clone());
                self.documents
                    .change(&path, p.text_document.version, p.content_changes)?;
            }
            "textDocument/didClose" => {
                let p: DidCloseTextDocumentParams = from_params(params)?;
                let path = uri_to_path(&p.text_document.uri)?;
                self.documents.close(&path);
                self.stale.path(path);
            }
            "workspace/didChangeWatchedFiles" => {
                let p: DidChangeWatchedFilesParams = from_params(params)?;
                for change in p.changes {
                    self.stale.path(uri_to_path(&change.uri)?);
                }
            }
            "workspace/didChangeWorkspaceFolders" => {
                let p: DidChangeWorkspaceFoldersParams = from_params(params)?;
                let removed: Vec<PathBuf> = p
                    .event
                    .removed
                    .iter()
                    .filter_map(|f| uri_to_path(&f.uri).ok())
                    .collect();
                let mut folders: Vec<PathBuf> = self
                    .workspace
                    .folders()
                    .iter()
                    .filter(|f| !removed.contains(f))
                    .cloned()
                    .collect();
                folders.extend(
                    p.event
                        .added
                        .iter()
                        .filter_map(|f| uri_to_path(&f.uri).ok()),
                );
                self.workspace.set_folders(folders);
                self.stale.everything();
            }
            // Saving changes nothing the overlay does not have already.
            _ => {}
        }
        Ok(())
    }

    /// Analyse what changed and publish diagnostics: always for changed open documents
    /// (editors expect a fresh list per edit), otherwise only where the list changed,
    /// including empty lists for files whose problems are gone.
    fn refresh(&mut self) {
        let stale = std::mem::take(&mut self.stale);
        let notes = self.workspace.update(&self.documents, &self.stdlib, &stale);
        for note in notes {
            eprintln!("{note}");
            self.out.send(Notification::new(
                "window/showMessage".into(),
                ShowMessageParams {
                    typ: MessageType::WARNING,
                    message: note,
                },
            ));
        }
        let current = collect(&self.workspace, &mut self.stdlib);
        let mut messages = Vec::new();
        for path in self.documents.paths() {
            let list = current.get(path);
            if self.stdlib.contains(path)
                || !(stale.contains(path) || list != self.published.get(path))
            {
                continue;
            }
            if let Some(document) = self.documents.get(path) {
                messages.push(PublishDiagnosticsParams::new(
                    document.uri.clone(),
                    list.cloned().unwrap_or_default(),
                    Some(document.version),
                ));
            }
        }
        let closed = |path: &PathBuf| self.documents.get(path).is_none();
        for (path, list) in current.iter().filter(|(p, _)| closed(p)) {
            if self.published.get(path) != Some(list) {
                messages.extend(
                    path_to_uri(path)
                        .map(|uri| PublishDiagnosticsParams::new(uri, list.clone(), None)),
                );
            }
        }
        for path in self
            .published
            .keys()
            .filter(|p| closed(p) && !current.contains_key(*p))
        {
            messages.extend(
                path_to_uri(path).map(|uri| PublishDiagnosticsParams::new(uri, Vec::new(), None)),
            );
        }
        self.published = current;
        for message in messages {
            self.out.send(Notification::new(
                "textDocument/publishDiagnostics".into(),
                message,
            ));
        }
    }

    /// The front-end path of a document after bringing the analysis up to date; `None`
    /// for a document no analysis can contain. Fails for unreadable or non-UTF-8 files.
    fn analysed(&mut self, uri: &Uri) -> Result<Option<PathBuf>, Failure> {
        let path = self.path(uri)?;
        if !self.stale.is_empty() {
            self.refresh();
        }
        if let Some(stdlib) = self.stdlib.stdlib_path(&path) {
            return Ok(Some(stdlib));
        }
        if self.documents.get(&path).is_none() {
            self.text(&path)?;
        }
        Ok(Some(path))
    }

    fn path(&self, uri: &Uri) -> Result<PathBuf, Failure> {
        uri_to_path(uri).map_err(|e| Failure::new(ErrorCode::InvalidParams, e))
    }

    /// A document's text: the open buffer, else the file on disk.
    fn text(&self, path: &Path) -> Result<String, Failure> {
        if let Some(document) = self.documents.get(path) {
            return Ok(document.text.clone());
        }
        let bytes = DiskFs.read(path).ok_or_else(|| {
            Failure::new(
                ErrorCode::RequestFailed,
                format!("cannot read `{}`", path.display()),
            )
        })?;
        String::from_utf8(bytes).map_err(|e| {
            Failure::new(
                ErrorCode::RequestFailed,
                format!(
                    "`{}` is not valid UTF-8 (invalid byte after {} valid bytes)",
                    path.display(),
                    e.utf8_error().valid_up_to()
                ),
            )
        })
    }
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..Default::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "\"".into(), "/".into()]),
            ..Default::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        workspace: Some(WorkspaceServerCapabilities {
            workspace_folders: Some(WorkspaceFoldersServerCapabilities {
                supported: Some(true),
                change_notifications: Some(OneOf::Left(true)),
            }),
            file_operations: None,
        }),
        ..Default::default()
    }
}

fn params<P: DeserializeOwned>(value: Value) -> Result<P, Failure> {
    from_params(value).map_err(|e| Failure::new(ErrorCode::InvalidParams, e))
}

fn from_params<P: DeserializeOwned>(value: Value) -> Result<P, String> {
    serde_json::from_value(value).map_err(|e| format!("invalid params: {e}"))
}

fn to_json(value: impl serde::Serialize) -> Answer {
    serde_json::to_value(value).map_err(|e| Failure::new(ErrorCode::InternalError, e.to_string()))
}

/// The workspace scan's bounds: the defaults, or the client's
/// `initializationOptions.workspaceScan` (`maxFiles`, `maxBytes`, `maxEntries`).
fn scan_limits(options: Option<&Value>) -> Result<ScanLimits, Failure> {
    let mut limits = ScanLimits::default();
    let Some(scan) = options.and_then(|o| o.get("workspaceScan")) else {
        return Ok(limits);
    };
    let number = |key: &str| -> Result<Option<u64>, Failure> {
        match scan.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
                Failure::new(
                    ErrorCode::InvalidParams,
                    format!("initializationOptions.workspaceScan.{key} must be a positive whole number, got {value}"),
                )
            }),
        }
    };
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    if let Some(n) = number("maxFiles")? {
        limits.files = size(n);
    }
    if let Some(n) = number("maxBytes")? {
        limits.bytes = n;
    }
    if let Some(n) = number("maxEntries")? {
        limits.entries = size(n);
    }
    Ok(limits)
}
