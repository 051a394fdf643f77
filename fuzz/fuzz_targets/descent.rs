//! The hand-written parser against pest's run on arbitrary text (lossy UTF-8): where
//! it accepts a declaration, pest must accept it too and give the same step.

#![no_main]

use flotilla::source::FileId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    // pest recurses deeply; the parser's threads have this stack.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || flotilla::syntax::compare_with_pest(FileId(0), &text))
        .expect("a thread for the parser")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
});
