//! Client-to-server streams (well-formed messages, wrong `Content-Length`s, broken
//! headers, arbitrary bytes) through the language server's frame reader and handlers:
//! it returns, writes well-formed frames, never fails internally, and answers the last
//! of three probes sent after everything else. The generator and the checks are shared
//! with the proptest in `tests/lsp.rs`.

#![no_main]

#[path = "../../tests/support/lsp_fuzz.rs"]
mod lsp_fuzz;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: lsp_fuzz::Input| lsp_fuzz::check(&input));
