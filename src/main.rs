/// The front end allocates and frees many small values (tree nodes, environments,
/// evaluated records): glibc's malloc and free took 30% of its time in a profile, and
/// mimalloc is faster at it (see BENCHMARKS.md, "Front end").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v2's `mi_option_e` (libmimalloc-sys names the
/// options around it but not this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds an emptied page stays with the process before mimalloc returns it to
/// the kernel (its default is 10): a large `check` frees and reallocates so much that
/// returning pages and faulting them back in cost it 1–2 s of system time at 10,000
/// clusters. A long-running process (the language server) still returns them when idle.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

fn main() {
    // SAFETY: mi_option_set only stores an integer option, read when mimalloc next
    // purges; the option index is one of v2's (the `v2` feature of `mimalloc`).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    std::process::exit(flotilla::cli::run());
}
