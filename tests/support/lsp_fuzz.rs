//! Client-to-server streams for the language server, shared by the fuzz target
//! `fuzz/fuzz_targets/lsp_frames.rs` and its proptest counterpart in `tests/lsp.rs`.
//!
//! An [`Input`] is a sequence of chunks: well-formed messages (document sync and the
//! requests the server answers), the same messages with a wrong `Content-Length` or a
//! broken header, and arbitrary bytes. [`check`] sends `initialize`, the chunks, then
//! three probe requests through [`flotilla::lsp::serve`] and asserts what the server
//! promises (issue 11 item 15): it returns at the end of input, writes only well-formed
//! frames, never answers with an internal error (a handler that panicked), and
//! resynchronises after a broken frame: the last probe is answered.

use std::io::Cursor;

use arbitrary::Arbitrary;
use serde_json::{Value, json};

/// Error code of a response whose handler panicked.
const INTERNAL_ERROR: i64 = -32603;

const FLEET: &str = r#"channel stable {
  kubernetes_version = "1.31.4"
  config_ref = "stable"
}

let owner = "platform"

cluster "prod-1" {
  account = "123456789012"
  region = "eu-central-1"
  environment = production
  channel = stable
  api_server_url = "https://${id}.example.org"
  owner = owner
  node_pool "workers" {
    instance_types = ["m5.large"]
    max_size = 3
  }
}
"#;

#[derive(Arbitrary, Debug)]
pub struct Input {
    chunks: Vec<Chunk>,
}

#[derive(Arbitrary, Debug)]
enum Chunk {
    Message(Message),
    /// A message whose `Content-Length` is off by `delta` bytes.
    WrongLength {
        message: Message,
        delta: i16,
    },
    /// `Content-Length: VALUE` and a blank line, then the message's body.
    BadHeader {
        value: String,
        message: Message,
    },
    Garbage(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Message {
    Open {
        doc: u8,
        text: Text,
    },
    Change {
        doc: u8,
        text: Text,
    },
    Close {
        doc: u8,
    },
    Hover(At),
    Completion(At),
    Definition(At),
    Formatting {
        doc: u8,
    },
    Symbols {
        doc: u8,
    },
    Shutdown,
    /// Any method with any parameters.
    Other {
        method: String,
        id: Option<i32>,
        params: String,
    },
}

#[derive(Arbitrary, Debug)]
struct At {
    doc: u8,
    line: u32,
    character: u32,
}

/// A document's text: a fleet with `insert` put in at byte `at` (or the insert alone).
#[derive(Arbitrary, Debug)]
struct Text {
    fleet: bool,
    at: u16,
    insert: String,
}

impl Text {
    fn text(&self) -> String {
        if !self.fleet {
            return self.insert.clone();
        }
        let mut at = usize::from(self.at) % (FLEET.len() + 1);
        while !FLEET.is_char_boundary(at) {
            at -= 1;
        }
        format!("{}{}{}", &FLEET[..at], self.insert, &FLEET[at..])
    }
}

/// Documents live under a directory that does not exist, so nothing is read from disk.
fn uri(doc: u8) -> String {
    format!("file:///flotilla-fuzz-nonexistent/doc{}.flt", doc % 3)
}

impl Message {
    /// The JSON-RPC body; requests get numeric ids from `next_id`.
    fn body(&self, next_id: &mut i64) -> Value {
        let mut request = |method: &str, params: Value| {
            *next_id += 1;
            json!({ "jsonrpc": "2.0", "id": *next_id, "method": method, "params": params })
        };
        let notification = |method: &str, params: Value| json!({ "jsonrpc": "2.0", "method": method, "params": params });
        let position = |at: &At| {
            json!({
                "textDocument": { "uri": uri(at.doc) },
                "position": { "line": at.line, "character": at.character },
            })
        };
        match self {
            Message::Open { doc, text } => notification(
                "textDocument/didOpen",
                json!({ "textDocument": {
                    "uri": uri(*doc), "languageId": "flotilla", "version": 1, "text": text.text(),
                } }),
            ),
            Message::Change { doc, text } => notification(
                "textDocument/didChange",
                json!({
                    "textDocument": { "uri": uri(*doc), "version": 2 },
                    "contentChanges": [{ "text": text.text() }],
                }),
            ),
            Message::Close { doc } => notification(
                "textDocument/didClose",
                json!({ "textDocument": { "uri": uri(*doc) } }),
            ),
            Message::Hover(at) => request("textDocument/hover", position(at)),
            Message::Completion(at) => request("textDocument/completion", position(at)),
            Message::Definition(at) => request("textDocument/definition", position(at)),
            Message::Formatting { doc } => request(
                "textDocument/formatting",
                json!({
                    "textDocument": { "uri": uri(*doc) },
                    "options": { "tabSize": 2, "insertSpaces": true },
                }),
            ),
            Message::Symbols { doc } => request(
                "textDocument/documentSymbol",
                json!({ "textDocument": { "uri": uri(*doc) } }),
            ),
            Message::Shutdown => request("shutdown", Value::Null),
            Message::Other { method, id, params } => {
                let params = serde_json::from_str(params).unwrap_or(Value::Null);
                // `exit` would end the stream before the probes.
                let method = if method == "exit" { "exit?" } else { method };
                match id {
                    Some(id) => {
                        json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
                    }
                    None => notification(method, params),
                }
            }
        }
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

impl Input {
    /// The client's stream, and whether it may hold an `exit` (then the probes after it
    /// go unanswered by design).
    pub fn stream(&self) -> (Vec<u8>, bool) {
        let mut next_id = 0;
        let mut out = frame(
            json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": { "capabilities": {} } })
                .to_string()
                .as_bytes(),
        );
        out.extend(frame(
            br#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#,
        ));
        let mut may_exit = false;
        for chunk in &self.chunks {
            match chunk {
                Chunk::Message(message) => {
                    out.extend(frame(message.body(&mut next_id).to_string().as_bytes()));
                }
                Chunk::WrongLength { message, delta } => {
                    let body = message.body(&mut next_id).to_string();
                    let length = (body.len() as i64 + i64::from(*delta)).max(0);
                    out.extend(format!("Content-Length: {length}\r\n\r\n{body}").into_bytes());
                }
                Chunk::BadHeader { value, message } => {
                    let body = message.body(&mut next_id).to_string();
                    out.extend(format!("Content-Length: {value}\r\n\r\n{body}").into_bytes());
                }
                Chunk::Garbage(bytes) => {
                    // An `exit` (perhaps spelled with JSON escapes) hidden in the bytes.
                    may_exit |= contains(bytes, b"exit") || contains(bytes, b"\\u");
                    out.extend_from_slice(bytes);
                }
            }
        }
        for probe in 1..=3 {
            let body = json!({ "jsonrpc": "2.0", "id": format!("probe-{probe}"), "method": "flotilla/probe" });
            out.extend(frame(body.to_string().as_bytes()));
        }
        (out, may_exit)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The frames of the server's output; panics on anything but a well-formed frame.
fn frames(mut output: &[u8]) -> Vec<Value> {
    let mut messages = Vec::new();
    while !output.is_empty() {
        let end = output
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header ends with a blank line");
        let header = std::str::from_utf8(&output[..end]).expect("a UTF-8 header");
        let length: usize = header
            .strip_prefix("Content-Length: ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a Content-Length header: {header:?}"));
        let body = &output[end + 4..end + 4 + length];
        messages.push(serde_json::from_slice(body).expect("a JSON body"));
        output = &output[end + 4 + length..];
    }
    messages
}

/// Serve the stream of `input` and check what the server promises.
pub fn check(input: &Input) {
    let (stream, may_exit) = input.stream();
    let mut output = Vec::new();
    flotilla::lsp::serve(Cursor::new(stream), &mut output);
    let messages = frames(&output);
    for message in &messages {
        assert_eq!(message["jsonrpc"], "2.0", "{message}");
        assert_ne!(
            message["error"]["code"].as_i64(),
            Some(INTERNAL_ERROR),
            "a handler failed: {message}"
        );
    }
    if !may_exit {
        assert!(
            messages.iter().any(|m| m["id"] == "probe-3"),
            "the last probe was not answered; the server answered: {messages:#?}"
        );
    }
}
