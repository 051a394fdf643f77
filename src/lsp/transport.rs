//! JSON-RPC over a byte stream with `Content-Length` framing.
//!
//! `lsp_server`'s own stdio transport stops at the first malformed message; editors
//! and fuzzers send those, so this reader answers them with an error and goes on.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::mpsc::{Receiver, Sender, channel};

use lsp_server::{ErrorCode, Message, RequestId};
use serde_json::Value;

/// What the reader thread hands to the server loop.
pub(crate) enum Incoming {
    Message(Message),
    /// A frame that is not a JSON-RPC message; answered with this error.
    Malformed {
        id: Option<RequestId>,
        code: ErrorCode,
        message: String,
    },
}

/// Longest header line accepted; protects against a stream without newlines.
const MAX_HEADER_LINE: u64 = 8 * 1024;

/// Read frames from `input` on a thread of its own. The channel closes at end of input.
pub(crate) fn spawn_reader(input: impl Read + Send + 'static) -> Receiver<Incoming> {
    let (sender, receiver) = channel();
    std::thread::Builder::new()
        .name("lsp-reader".into())
        .spawn(move || read_loop(BufReader::new(input), &sender))
        .map_err(|e| eprintln!("flotilla lsp: cannot start the reader thread: {e}"))
        .ok();
    receiver
}

fn read_loop(mut input: impl BufRead, sender: &Sender<Incoming>) {
    // Bytes of a frame that claimed too long a body: the start of the next frame.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let mut source = (&pending[..]).chain(&mut input);
        let frame = read_frame(&mut source);
        let left = source.into_inner().0.to_vec();
        pending = left;
        let incoming = match frame {
            Ok(Some(Ok(body))) => match next_header(&body) {
                // A body that is not JSON but holds a header: its Content-Length was too
                // large. Its own part is decoded; the rest is read again as a frame.
                Some(at) if serde_json::from_slice::<Value>(&body).is_err() => {
                    let mut rest = body[at..].to_vec();
                    rest.extend_from_slice(&pending);
                    pending = rest;
                    decode(&body[..at])
                }
                _ => decode(&body),
            },
            Ok(Some(Err(problem))) => Incoming::Malformed {
                id: None,
                code: ErrorCode::ParseError,
                message: problem,
            },
            Ok(None) => return,
            Err(e) => {
                eprintln!("flotilla lsp: reading input failed: {e}");
                return;
            }
        };
        let is_exit =
            matches!(&incoming, Incoming::Message(Message::Notification(n)) if n.method == "exit");
        if sender.send(incoming).is_err() || is_exit {
            return;
        }
    }
}

const HEADER: &[u8] = b"content-length:";

/// Where a `Content-Length` header starts in `bytes` after their first byte.
fn next_header(bytes: &[u8]) -> Option<usize> {
    (1..bytes.len().saturating_sub(HEADER.len() - 1))
        .find(|&at| bytes[at..at + HEADER.len()].eq_ignore_ascii_case(HEADER))
}

/// One frame's body, `Err` for a broken header, `None` at end of input.
fn read_frame(input: &mut impl BufRead) -> io::Result<Option<Result<Vec<u8>, String>>> {
    let mut length: Option<Result<usize, String>> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .by_ref()
            .take(MAX_HEADER_LINE)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(None);
        }
        // The rest of a frame whose Content-Length was too small, then the next
        // header: resynchronise on the header.
        if let Some(at) = next_header(&line) {
            line.drain(..at);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if length.is_none() {
                // Blank lines between frames are harmless.
                continue;
            }
            break;
        }
        match text.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("content-length") => {
                length = Some(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| format!("invalid Content-Length `{}`", value.trim())),
                );
            }
            Some(_) => {}
            None => {
                return Ok(Some(Err(format!(
                    "malformed header line `{}`",
                    shorten(text)
                ))));
            }
        }
    }
    let length = match length {
        Some(Ok(length)) => length,
        Some(Err(problem)) => return Ok(Some(Err(problem))),
        None => return Ok(Some(Err("missing Content-Length header".into()))),
    };
    // Grow with the data actually sent, not with what the header claims.
    let mut body = Vec::new();
    input.by_ref().take(length as u64).read_to_end(&mut body)?;
    if body.len() < length {
        // The input ended inside the body. A header in what did arrive means the length
        // was too large and frames followed: hand it on to resynchronise on them.
        return Ok(next_header(&body).map(|_| Ok(body)));
    }
    Ok(Some(Ok(body)))
}

fn decode(body: &[u8]) -> Incoming {
    let malformed = |id, code, message: String| Incoming::Malformed { id, code, message };
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => return malformed(None, ErrorCode::ParseError, format!("invalid JSON: {e}")),
    };
    let id = value.get("id").and_then(request_id);
    match serde_json::from_value::<Message>(value) {
        Ok(message) => Incoming::Message(message),
        Err(e) => malformed(
            id,
            ErrorCode::InvalidRequest,
            format!("not a JSON-RPC message: {e}"),
        ),
    }
}

fn request_id(value: &Value) -> Option<RequestId> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(RequestId::from),
        Value::String(s) => Some(RequestId::from(s.clone())),
        _ => None,
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Writes messages to the client. A failed write (the client went away) is kept and
/// checked by the server loop, so call sites need not handle it.
pub(crate) struct Output<W: Write> {
    writer: W,
    failure: Option<io::Error>,
}

impl<W: Write> Output<W> {
    pub(crate) fn new(writer: W) -> Output<W> {
        Output {
            writer,
            failure: None,
        }
    }

    pub(crate) fn failure(&self) -> Option<&io::Error> {
        self.failure.as_ref()
    }

    pub(crate) fn send(&mut self, message: impl Into<Message>) {
        if self.failure.is_none() {
            self.failure = message.into().write(&mut self.writer).err();
        }
    }

    /// An error response; `id` is null when the request's id could not be read.
    pub(crate) fn send_error(&mut self, id: Option<RequestId>, code: ErrorCode, message: &str) {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": { "code": code as i32, "message": message },
        })
        .to_string();
        if self.failure.is_none() {
            self.failure = write!(self.writer, "Content-Length: {}\r\n\r\n{body}", body.len())
                .and_then(|_| self.writer.flush())
                .err();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &str) -> Vec<Result<String, String>> {
        let mut reader = io::Cursor::new(input.as_bytes().to_vec());
        let mut out = Vec::new();
        while let Some(frame) = read_frame(&mut reader).unwrap() {
            out.push(frame.map(|b| String::from_utf8(b).unwrap()));
        }
        out
    }

    #[test]
    fn reads_frames_and_reports_broken_headers() {
        let got = frames(
            "Content-Length: 2\r\n\r\n{}Content-Type: x\r\ncontent-length:3\r\n\r\n[1]\
             garbage\r\nContent-Length: nope\r\n\r\n",
        );
        assert_eq!(got[0], Ok("{}".into()));
        assert_eq!(got[1], Ok("[1]".into()));
        assert!(got[2].as_ref().unwrap_err().contains("malformed header"));
        assert!(
            got[3]
                .as_ref()
                .unwrap_err()
                .contains("invalid Content-Length")
        );
    }

    /// Every message the reader hands on, as a body or an error.
    fn incoming(input: &str) -> Vec<Result<String, String>> {
        let (sender, receiver) = channel();
        read_loop(io::Cursor::new(input.as_bytes().to_vec()), &sender);
        drop(sender);
        receiver
            .iter()
            .map(|m| match m {
                Incoming::Message(m) => Ok(serde_json::to_string(&m).unwrap()),
                Incoming::Malformed { message, .. } => Err(message),
            })
            .collect()
    }

    // After a bad Content-Length the server lost its place and dropped later messages.
    #[test]
    fn a_bad_content_length_loses_only_its_own_frame() {
        let note = r#"{"jsonrpc":"2.0","method":"n"}"#;
        let next = format!("Content-Length: {}\r\n\r\n{note}", note.len());
        for first in [
            format!("Content-Length: x\r\n\r\n{note}"),
            format!("Content-Length: 5\r\n\r\n{note}"),
            format!("Content-Length: {}\r\n\r\n{note}", note.len() + 20),
        ] {
            let got = incoming(&format!("{first}{next}{next}"));
            // The two frames after the broken one both arrive, whole.
            let last_two = &got[got.len().saturating_sub(2)..];
            assert!(
                last_two.len() == 2
                    && last_two
                        .iter()
                        .all(|m| m.as_ref().is_ok_and(|m| m.contains(r#""method":"n""#))),
                "{first:?}: {got:?}"
            );
        }
    }

    // A Content-Length beyond the end of the input swallowed the frames after it.
    #[test]
    fn frames_after_a_length_beyond_the_end_of_input_are_still_read() {
        let note = r#"{"jsonrpc":"2.0","method":"n"}"#;
        let next = format!("Content-Length: {}\r\n\r\n{note}", note.len());
        for first in [
            "Content-Length: 99999\r\n\r\nx",
            "Content-Length: 99999\r\n\r\n",
        ] {
            let got = incoming(&format!("{first}{next}{next}"));
            let whole = got
                .iter()
                .filter(|m| m.as_ref().is_ok_and(|m| m.contains(r#""method":"n""#)))
                .count();
            // Without a byte before it, the first frame's header is the broken frame's body.
            let expected = if first.ends_with('x') { 2 } else { 1 };
            assert_eq!(whole, expected, "{first:?}: {got:?}");
        }
    }

    #[test]
    fn a_huge_content_length_does_not_allocate_it() {
        assert!(frames("Content-Length: 99999999999999\r\n\r\n{}").is_empty());
    }

    #[test]
    fn invalid_messages_keep_their_id() {
        let Incoming::Malformed { id, code, .. } = decode(br#"{"jsonrpc":"2.0","id":7}"#) else {
            panic!("expected an error")
        };
        assert_eq!(id, Some(RequestId::from(7)));
        assert!(matches!(code, ErrorCode::InvalidRequest));
        assert!(matches!(
            decode(b"{not json"),
            Incoming::Malformed { id: None, .. }
        ));
    }
}
