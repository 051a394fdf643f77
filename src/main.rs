/// The front end allocates and frees many small values (tree nodes, environments,
/// evaluated records): glibc's malloc and free took 30% of its time in a profile, and
/// mimalloc is faster at it (see BENCHMARKS.md, "Front end").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(flotilla::cli::run());
}
