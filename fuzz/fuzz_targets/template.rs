//! Random config sets (nested loops over `range`, string repetition, filters, includes
//! and macros, large literal output) and cluster values, rendered as `compile` renders
//! them: the render returns, no artifact exceeds the size limit, every error names its
//! template. The generator and the checks are shared with the proptest in
//! `tests/hostile.rs`.

#![no_main]

#[path = "../../tests/support/template_fuzz.rs"]
mod template_fuzz;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: template_fuzz::Input| template_fuzz::check(&input));
