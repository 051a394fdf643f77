//! Language-server latency over the real stdio binary: time from sending `didChange` to
//! receiving the `publishDiagnostics` for that version, on a generated 5,000-line fleet
//! file. Run with `cargo bench --bench lsp`.

#[path = "../tests/support/files.rs"]
mod files;
#[path = "../tests/support/jsonrpc.rs"]
mod jsonrpc;

use std::io::{BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use files::TempDir;
use flotilla::analysis::analyze;
use flotilla::eval::evaluate;
use flotilla::resolve::load;
use flotilla::source::{FileId, MemoryFs};
use flotilla::syntax::{Reparser, parse};
use flotilla::types::check;
use jsonrpc::read_frame;
use serde_json::{Value, json};

const LINES: usize = 5_000;
const EDITS: usize = 40;
const FULL_CHANGES: usize = 15;

/// A valid fleet of at least `lines` lines: one channel, clusters with three node pools.
fn fleet(lines: usize) -> String {
    let mut text = String::from(
        "channel stable {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"stable\"\n}\n\n",
    );
    let mut cluster = 0;
    while text.lines().count() < lines {
        let env = if cluster % 3 == 0 {
            "test"
        } else {
            "production"
        };
        text.push_str(&format!(
            "cluster \"cluster-{cluster:04}\" {{\n  account = \"{:012}\"\n  region = \"eu-central-1\"\n  \
             environment = {env}\n  channel = stable\n  api_server_url = \"https://${{id}}.example.org\"\n  \
             config_items {{\n    coredns_memory_limit = 300Mi\n  }}\n",
            100_000_000_000u64 + cluster,
        ));
        for pool in 0..3 {
            text.push_str(&format!(
                "  node_pool \"pool-{pool}\" {{\n    instance_types = [\"m5.large\", \"m5.xlarge\"]\n    \
                 min_size = 1\n    max_size = {}\n    labels = {{ \"pool\": \"pool-{pool}\" }}\n    \
                 update {{\n      max_surge = 2\n    }}\n  }}\n",
                10 + pool,
            ));
        }
        text.push_str("}\n\n");
        cluster += 1;
    }
    text
}

struct Server {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    next_id: i64,
}

impl Server {
    fn start(root: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start flotilla lsp");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, incoming) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_frame(&mut reader) {
                if sender.send(message).is_err() {
                    return;
                }
            }
        });
        let mut server = Server {
            child,
            stdin,
            incoming,
            next_id: 1,
        };
        server.request(
            "initialize",
            json!({ "processId": null, "rootUri": file_uri(root), "capabilities": {} }),
        );
        server.notify("initialized", json!({}));
        server
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self.recv();
            if message["id"] == id {
                return message;
            }
        }
    }

    fn recv(&self) -> Value {
        self.incoming
            .recv_timeout(Duration::from_secs(60))
            .expect("a message from the server within a minute")
    }

    /// Wait for the diagnostics of `version` of `uri`; returns how many there are.
    fn diagnostics(&self, uri: &str, version: i32) -> usize {
        loop {
            let message = self.recv();
            let params = &message["params"];
            if message["method"] == "textDocument/publishDiagnostics"
                && params["uri"] == uri
                && params["version"] == version
            {
                return params["diagnostics"].as_array().map_or(0, Vec::len);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

struct Stats {
    samples: Vec<Duration>,
}

impl Stats {
    fn print(mut self, what: &str) {
        self.samples.sort();
        let at = |q: f64| self.samples[((self.samples.len() - 1) as f64 * q).round() as usize];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{what:<44} {:>4}  {:>8.1}  {:>8.1}  {:>8.1}  {:>8.1}",
            self.samples.len(),
            ms(at(0.0)),
            ms(at(0.5)),
            ms(at(0.9)),
            ms(at(1.0)),
        );
    }
}

/// Where an analysis spends its time: the front end's phases on the same file, in
/// process (best of 5), for the valid file and for one with a syntax error.
fn phases(dir: &Path, valid: &str, broken: &str) {
    println!();
    println!("front end phases in process (best of 5 ms): parse, reparse (after a one-character");
    println!("edit, as the server does), load (parse + imports + stdlib),");
    println!("check, evaluate, and analyze (all of them, what the server runs per change)");
    for (what, text) in [("valid file", valid), ("with a syntax error", broken)] {
        let mut fs = MemoryFs::new();
        let path = dir.join("fleet.flt");
        fs.insert(&path, text);
        let best = |f: &mut dyn FnMut()| {
            (0..5)
                .map(|_| {
                    let start = Instant::now();
                    f();
                    start.elapsed().as_secs_f64() * 1e3
                })
                .fold(f64::INFINITY, f64::min)
        };
        let parse_ms = best(&mut || drop(parse(FileId(0), text)));
        // What the server parses per keystroke: one character changed in the middle,
        // and back, on a reparser that parsed the file before.
        let middle = text.len() / 2 + text[text.len() / 2..].find("= 1").unwrap_or(0) + 2;
        let mut edited = text.to_string();
        edited.replace_range(middle..middle + 1, "7");
        let mut reparser = Reparser::default();
        reparser.parse(FileId(0), text);
        let reparse_ms = best(&mut || {
            drop(reparser.parse(FileId(0), &edited));
            drop(reparser.parse(FileId(0), text));
        }) / 2.0;
        let load_ms = best(&mut || drop(load(&fs, &path)));
        let program = load(&fs, &path);
        let check_ms = best(&mut || drop(check(&program)));
        let checked = check(&program);
        let evaluate_ms = if checked.diagnostics.is_empty() && program.diagnostics.is_empty() {
            best(&mut || drop(evaluate(&program, &checked)))
        } else {
            0.0
        };
        let analyze_ms = best(&mut || drop(analyze(&fs, &path)));
        println!(
            "{what:<24} parse {parse_ms:>6.1}  reparse {reparse_ms:>5.1}  load {load_ms:>6.1}  check {check_ms:>6.1}  evaluate {evaluate_ms:>6.1}  analyze {analyze_ms:>6.1}"
        );
    }
}

fn main() {
    let dir = TempDir::new("lsp-bench");
    let text = fleet(LINES);
    let path = dir.join("fleet.flt");
    std::fs::write(&path, &text).expect("write the fleet");
    let uri = file_uri(&path);
    let lines = text.lines().count();
    let clusters = text.matches("\ncluster ").count();
    println!(
        "flotilla lsp: didChange → publishDiagnostics, {lines}-line file, {clusters} clusters"
    );
    println!(
        "{:<44} {:>4}  {:>8}  {:>8}  {:>8}  {:>8}",
        "", "runs", "min ms", "median", "p90", "max"
    );

    let mut server = Server::start(&dir);
    let start = Instant::now();
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "flotilla", "version": 1, "text": text } }),
    );
    assert_eq!(
        server.diagnostics(&uri, 1),
        0,
        "the generated fleet must be valid"
    );
    Stats {
        samples: vec![start.elapsed()],
    }
    .print("open (first analysis)");

    let mut version = 1;
    let mut full = Vec::new();
    for i in 0..FULL_CHANGES {
        version += 1;
        let changed = text.replacen("max_size = 10", &format!("max_size = {}", 20 + i), 1);
        let start = Instant::now();
        server.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "text": changed }] }),
        );
        assert_eq!(server.diagnostics(&uri, version), 0);
        full.push(start.elapsed());
    }
    Stats { samples: full }.print("full-text change (whole file sent)");

    // One character in the middle of the file: a pool's max_size 10 ↔ 19, still valid.
    let middle = text.len() / 2
        + text[text.len() / 2..]
            .find("max_size = 1")
            .expect("a max_size")
        + "max_size = 1".len();
    let line = text[..middle].matches('\n').count();
    let column = middle - text[..middle].rfind('\n').map_or(0, |i| i + 1);
    let mut run_edits = |server: &mut Server, replacement: [&str; 2], expect_errors: bool| {
        let mut samples = Vec::new();
        for i in 0..EDITS {
            version += 1;
            let start = Instant::now();
            server.notify(
                "textDocument/didChange",
                json!({
                    "textDocument": { "uri": uri, "version": version },
                    "contentChanges": [{
                        "range": { "start": { "line": line, "character": column }, "end": { "line": line, "character": column + 1 } },
                        "text": replacement[i % 2],
                    }],
                }),
            );
            let count = server.diagnostics(&uri, version);
            assert_eq!(count > 0, expect_errors && i % 2 == 0, "edit {i}");
            samples.push(start.elapsed());
        }
        samples
    };
    let valid = run_edits(&mut server, ["9", "0"], false);
    Stats { samples: valid }.print("one-character edit (stays valid)");
    // `max_size = 1)`: a syntax error, then fixed again; errors take the parser's
    // slower recovery path.
    let broken = run_edits(&mut server, [")", "0"], true);
    Stats { samples: broken }.print("one-character edit (syntax error ↔ fixed)");

    let mut hovers = Vec::new();
    let mut completions = Vec::new();
    for _ in 0..EDITS / 2 {
        let position = json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": column - 3 } });
        let start = Instant::now();
        server.request("textDocument/hover", position.clone());
        hovers.push(start.elapsed());
        let start = Instant::now();
        server.request("textDocument/completion", position);
        completions.push(start.elapsed());
    }
    Stats { samples: hovers }.print("hover request");
    Stats {
        samples: completions,
    }
    .print("completion request");

    phases(
        &dir,
        &text,
        &text.replacen("max_size = 1", "max_size = 1)", 1),
    );

    server.request("shutdown", Value::Null);
    server.notify("exit", Value::Null);
    let _ = server.child.wait();
}
