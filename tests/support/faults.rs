//! A fault-injecting HTTP proxy in front of moto: it forwards every request, except
//! those of an operation a test chose to fail, which it answers with an AWS error (or
//! not at all). It also records the operation of every request, so a test can say what
//! was never sent (no TerminateInstanceInAutoScalingGroup, no DeleteStack).
//!
//! The operation is read the way AWS routes it: `Action=` in a query-protocol body
//! (CloudFormation, Auto Scaling, EC2, STS) or the `X-Amz-Target` header.
#![allow(dead_code)] // each test binary uses its own part of it

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a chosen operation fails.
#[derive(Clone, Debug)]
pub enum Fault {
    /// An AWS error answer: HTTP status, error code, message.
    Error(u16, &'static str, &'static str),
    /// The connection stays open and nothing is answered.
    Silence,
}

impl Fault {
    /// What an overloaded AWS endpoint answers: retried, and then a failure.
    pub fn internal_error() -> Fault {
        Fault::Error(500, "InternalFailure", "injected by the test proxy")
    }
}

#[derive(Default)]
struct State {
    faults: Vec<(String, Fault)>,
    seen: Vec<String>,
}

pub struct FaultProxy {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream` (`http://HOST:PORT`).
    /// It lives as long as the test process.
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                let upstream = upstream.clone();
                std::thread::spawn(move || serve(stream, &upstream, &state));
            }
        });
        FaultProxy { url, state }
    }

    /// From now on, every request of `operation` (e.g. `DescribeStacks`) fails so.
    pub fn fail(&self, operation: &str, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        state.faults.push((operation.to_string(), fault));
    }

    /// Forward everything again.
    pub fn heal(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// The operations requested so far, in order, failed ones included.
    pub fn seen(&self) -> Vec<String> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn clear_seen(&self) {
        self.state.lock().unwrap().seen.clear();
    }
}

/// One request per connection: the answer closes it, and the client opens another.
fn serve(mut client: TcpStream, upstream: &str, state: &Mutex<State>) {
    let Some((head, body)) = read_request(&mut client) else {
        return;
    };
    let operation = operation(&head, &body);
    let fault = {
        let mut state = state.lock().unwrap();
        state.seen.push(operation.clone());
        state
            .faults
            .iter()
            .find(|(name, _)| *name == operation)
            .map(|(_, fault)| fault.clone())
    };
    match fault {
        Some(Fault::Error(status, code, message)) => {
            let body = format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
            );
            let answer = format!(
                "HTTP/1.1 {status} Injected\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes());
        }
        Some(Fault::Silence) => {
            // Held open, unanswered, until the client gives up.
            let mut sink = [0u8; 1024];
            let _ = client.set_read_timeout(Some(Duration::from_secs(120)));
            while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
        }
        None => forward(&mut client, upstream, &head, &body),
    }
}

/// The request head (up to the blank line) and its body (by Content-Length).
fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 8192];
    let end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buffer).ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&data[..end]).to_string();
    let length = header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = data[end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buffer).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&buffer[..n]);
    }
    Some((head, body))
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

fn operation(head: &str, body: &[u8]) -> String {
    if let Some(target) = header(head, "x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("unknown")
        .to_string()
}

/// Send the request to moto with `connection: close` and relay its whole answer.
fn forward(client: &mut TcpStream, upstream: &str, head: &str, body: &[u8]) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    if server.write_all(closing(head).as_bytes()).is_err() || server.write_all(body).is_err() {
        return;
    }
    let mut answer = Vec::new();
    let _ = server.read_to_end(&mut answer);
    // The client is told too, so it never reuses a connection this proxy closes.
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let head = String::from_utf8_lossy(&answer[..end + 4]).to_string();
    let _ = client.write_all(closing(&head).as_bytes());
    let _ = client.write_all(&answer[end + 4..]);
}

/// A message head with its `connection` header replaced by `connection: close`.
fn closing(head: &str) -> String {
    let mut out: String = head
        .trim_end_matches("\r\n")
        .lines()
        .filter(|line| {
            !line
                .split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
        })
        .map(|line| format!("{line}\r\n"))
        .collect();
    out.push_str("connection: close\r\n\r\n");
    out
}
