//! Reading LSP frames (`Content-Length` header, blank line, JSON body), shared by the
//! language-server tests and its benchmark.

use std::io::BufRead;

use serde_json::Value;

/// The next message, or `None` at the end of the stream or on a malformed frame.
pub fn read_frame(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = value.parse().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}
