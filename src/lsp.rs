//! The language server (`flotilla lsp`): the Language Server Protocol over stdio, on
//! top of the same front end as `flotilla check` ([`crate::analysis::analyze`]) and the
//! same formatter as `flotilla fmt`.
//!
//! ```text
//! stdin → transport (framing) → server (documents, analysis scheduling, dispatch) → stdout
//!                                  │  workspace: one Analysis per root, read through
//!                                  │  documents::OverlayFs (open buffers over the disk,
//!                                  │  directories walked within scan::ScanLimits)
//!                                  └→ diagnostics, hover, completion, definition,
//!                                     formatting, symbols (cursor: what is at an offset)
//! ```

mod completion;
mod cursor;
mod definition;
mod describe;
mod diagnostics;
mod documents;
mod formatting;
mod hover;
mod paths;
mod scan;
mod server;
mod symbols;
mod transport;
mod workspace;

/// Serve the Language Server Protocol on stdin/stdout; returns the exit code.
pub fn run_stdio() -> i32 {
    without_huge_pages();
    serve(std::io::stdin(), std::io::stdout())
}

/// The allocator asks for transparent huge pages, which pays in a one-shot run (`eval`
/// of 1,000 clusters: 0.19 s with them, 0.30 s without), but each analysis here works
/// in fresh memory on new threads, and every first touch of a huge page zeroes 2 MB:
/// 13% of the server's CPU, and edit-to-diagnostics p90 22–27 ms with them against
/// 16–21 ms without (BENCHMARKS.md, "Language server"). If the kernel refuses, the
/// server only runs slower.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

/// Serve one client whose messages arrive on `input` until `exit` or the end of
/// `input`; returns the exit code. `run_stdio` with other streams: for fuzzing and tests.
pub fn serve(input: impl std::io::Read + Send + 'static, output: impl std::io::Write) -> i32 {
    server::run(input, output)
}
