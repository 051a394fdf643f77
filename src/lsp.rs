//! The language server (`flotilla lsp`).

/// Serve the Language Server Protocol on stdin/stdout; returns the exit code.
pub fn run_stdio() -> i32 {
    eprintln!("flotilla lsp: not implemented yet");
    1
}
