//! Endpoints that misbehave at the TCP level, for timeout and error-message tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A server on a loopback port that answers every connection with `reply` (raw bytes,
/// after reading the request head), or with nothing at all when `reply` is `None`:
/// the connection stays open and silent. Lives as long as the process.
pub fn serve(reply: Option<&'static [u8]>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Held so silent connections are never closed.
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            match reply {
                None => held.lock().unwrap().push(stream),
                Some(reply) => {
                    std::thread::spawn(move || answer(stream, reply));
                }
            }
        }
    });
    url
}

/// An endpoint that accepts connections and never says a word.
pub fn silent() -> String {
    serve(None)
}

fn answer(mut stream: TcpStream, reply: &[u8]) {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
    let _ = stream.write_all(reply);
}
