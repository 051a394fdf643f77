//! Parse arbitrary bytes (as lossy UTF-8): the parser must not panic, and whatever parses
//! without errors must format to source that parses again and is already canonical.

#![no_main]

use flotilla::format::format_source;
use flotilla::source::FileId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // `format_source` parses first and refuses input with syntax errors.
    let Ok(formatted) = format_source(FileId(0), &text) else {
        return;
    };
    match format_source(FileId(0), &formatted) {
        Ok(again) => assert_eq!(again, formatted, "formatting is not idempotent"),
        Err(diagnostics) => panic!("formatted output does not parse: {diagnostics:#?}"),
    }
});
